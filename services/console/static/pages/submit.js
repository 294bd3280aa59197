/* 报送材料：填写说明并提交，然后进入详情页上传佐证资料。 */
Console.page("submit", async ({ me, root, query }) => {
  const { $, h, api, LABELS, campaignFor, noCampaign, formError, busy } = Console;
  const form = $(".submit-form");
  const campaign = await campaignFor(me);
  if (!campaign) {
    noCampaign();
    form.hidden = true;
    return;
  }
  const definition = campaign.definition || {};
  const measures = definition.measures || [];
  const select = form.elements.measure_code;
  for (const m of measures) select.append(h("option", { value: m.code }, `${m.code} ${m.name}`));
  for (const t of definition.topics || []) {
    $(".topic-checks").append(h("label.check", h("input", { type: "checkbox", name: "topics", value: t.code }), `${t.code} ${t.name}`));
  }
  if (query.get("measure")) select.value = query.get("measure");
  if (query.get("kind")) form.elements.kind.value = query.get("kind");

  const kinds = (list) => (list || []).map((k) => LABELS.evidenceKind[k] || k).join("或");
  function refresh() {
    const isMeasure = form.elements.kind.value === "measure";
    $(".measure-field").hidden = !isMeasure;
    select.disabled = !isMeasure;
    const m = measures.find((x) => x.code === select.value);
    $(".measure-hint").textContent = isMeasure && m
      ? `${m.description || ""} 佐证资料：至少 ${(m.evidence || {}).min_count || 1} 份${kinds((m.evidence || {}).kinds)}。`
      : "";
  }
  form.elements.kind.addEventListener("change", refresh);
  select.addEventListener("change", refresh);
  refresh();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    formError(form, null);
    const v = form.elements;
    const body = {
      unit_id: me.unit_id, kind: v.kind.value, title: v.title.value.trim(), description: v.description.value,
      place: v.place.value.trim(), topics: Array.from(form.querySelectorAll("input[name=topics]:checked")).map((x) => x.value),
    };
    if (body.kind === "measure") body.measure_code = select.value;
    if (v.held_on.value) body.held_on = v.held_on.value;
    if (v.participants.value !== "") body.participants = Number(v.participants.value);
    const button = form.querySelector("button[type=submit]");
    busy(button, true, "正在提交……");
    try {
      const created = await api("intake", "/submissions", { method: "POST", json: body });
      location.href = `${root}/submissions/${encodeURIComponent(created.id)}?new=1`;
    } catch (error) {
      busy(button, false);
      formError(form, error);
    }
  });
});
