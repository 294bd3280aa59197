/* 检查：抽查方案（可复现的随机种子）、检查记录表（措施核对、抽查人数、发现的问题）、检查记录列表。 */
Console.page("inspections", async ({ me }) => {
  const C = Console;
  const { $, h, api, replace, LABELS, badge, toast, formError, busy, showError } = C;
  const campaign = await C.campaignFor(me);
  if (!campaign) {
    C.noCampaign();
    return;
  }
  C.campaignPicker($(".campaign-picker"), campaign);
  const definition = campaign.definition || {};
  const units = await C.unitsById(campaign);
  const participating = Array.from(units.values()).filter((u) => u.participates).sort((a, b) => a.unit_path.localeCompare(b.unit_path));
  const unitName = (id) => (units.has(id) ? units.get(id).name : `单位 ${String(id).slice(0, 8)}`);
  const canRecord = ["admin", "inspector"].includes(me.role);

  const samplingForm = $(".sampling-form");
  const inspectionForm = $(".inspection-form");
  const levels = Array.from(new Set(participating.map((u) => u.level)));
  for (const level of levels) samplingForm.elements.level.append(h("option", { value: level }, LABELS.level[level] || level));
  for (const unit of participating) inspectionForm.elements.unit_id.append(h("option", { value: unit.id }, unit.name));
  replace($(".measure-checks"), (definition.measures || []).map((m) =>
    h("label.check", h("input", { type: "checkbox", name: "measures_verified", value: m.code }), `${m.code} ${m.name}`)));
  const today = new Date().toISOString().slice(0, 10);
  const windowEnd = campaign.inspection_end || campaign.publicity_end;
  inspectionForm.elements.inspected_on.value = windowEnd && windowEnd < today ? windowEnd : today;
  if (campaign.inspection_start) inspectionForm.elements.inspected_on.min = campaign.inspection_start;
  if (campaign.inspection_end) inspectionForm.elements.inspected_on.max = campaign.inspection_end;

  if (!canRecord) {
    $(".sampling-card").hidden = true;
    $(".inspection-card").hidden = true;
  }

  samplingForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const v = samplingForm.elements;
    const body = { campaign_id: campaign.id, size: Number(v.size.value) };
    if (v.level.value) body.level = v.level.value;
    if (v.seed.value !== "") body.seed = Number(v.seed.value);
    const button = samplingForm.querySelector("button");
    busy(button, true);
    try {
      const draw = await api("review", "/samplings", { method: "POST", json: body });
      busy(button, false);
      v.seed.value = draw.seed;
      replace($(".sampling-result"),
        h("p", `随机种子 ${draw.seed}（从 ${draw.population.length} 个单位中抽取 ${draw.selected.length} 个；用同一种子可重现）`,
          draw.reproduced ? badge("可复现", "good") : badge("无法复现", "bad")),
        h("ol.sampled", draw.units.map((u) => {
          const pick = h("button.btn.btn-quiet", { type: "button" }, "检查此单位");
          pick.addEventListener("click", () => {
            inspectionForm.elements.unit_id.value = u.unit_id;
            inspectionForm.elements.sampling_id.value = draw.id;
            inspectionForm.scrollIntoView({ block: "start" });
          });
          return h("li", { dataset: { unitId: u.unit_id } }, `${u.name}（${LABELS.level[u.level] || u.level}）`, " ", pick);
        })));
    } catch (error) {
      busy(button, false);
      showError(error, $(".sampling-result"), "抽查方案");
    }
  });

  inspectionForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    formError(inspectionForm, null);
    const v = inspectionForm.elements;
    const count = (name) => Number(v[name].value || 0);
    const body = {
      campaign_id: campaign.id, unit_id: v.unit_id.value, method: v.method.value, inspected_on: v.inspected_on.value,
      measures_verified: Array.from(inspectionForm.querySelectorAll("input[name=measures_verified]:checked")).map((x) => x.value),
      residents_asked: count("residents_asked"), residents_aware: count("residents_aware"), residents_able: count("residents_able"),
      staff_tested: count("staff_tested"), staff_proficient: count("staff_proficient"), findings: v.findings.value,
      problems: v.problems.value.split("\n").map((x) => x.trim()).filter(Boolean),
    };
    if (v.sampling_id.value) body.sampling_id = v.sampling_id.value;
    const button = inspectionForm.querySelector("button[type=submit]");
    busy(button, true);
    try {
      const saved = await api("review", "/inspections", { method: "POST", json: body });
      busy(button, false);
      toast("检查记录已保存");
      replace($(".inspection-result"), h("p.notice.notice-info",
        `已保存：${unitName(saved.unit_id)}，${saved.score != null ? `检查得分 ${saved.score} / ${saved.max_points}` : "未评分"}`,
        saved.supervision_ids && saved.supervision_ids.length ? `；已自动发起督办 ${saved.supervision_ids.length} 件` : ""));
      inspectionForm.reset();
      v.inspected_on.value = body.inspected_on;
      await loadList();
    } catch (error) {
      busy(button, false);
      formError(inspectionForm, error.missingRoute ? new Error("暂不可用：检查接口尚未开放") : error);
    }
  });

  async function loadList() {
    const where = $(".inspection-list");
    try {
      const rows = await api("review", "/inspections", { query: { campaign_id: campaign.id, limit: 200 } });
      replace(where, rows.length ? h("table.table",
        h("thead", h("tr", h("th", "日期"), h("th", "单位"), h("th", "方式"), h("th", "核实措施"), h("th", "群众知晓"), h("th", "得分"), h("th", "检查员"))),
        h("tbody", rows.map((r) => h("tr", { dataset: { inspection: r.id } },
          h("td", r.inspected_on), h("td", unitName(r.unit_id)), h("td", LABELS.method[r.method] || r.method),
          h("td", r.measures_verified.join("、") || "—"),
          h("td", r.residents_asked ? `${r.residents_aware}/${r.residents_asked}` : "—"),
          h("td", r.score != null ? `${r.score}` : "—"), h("td", r.inspector))))) : h("p.muted", "尚无检查记录"));
    } catch (error) {
      showError(error, where, "检查记录");
    }
  }
  await loadList();
});
