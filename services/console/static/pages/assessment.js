/* 考核排名：按层级排名，展开看每一分的来历；生成、下载并发布通报（docx/xlsx）。 */
Console.page("assessment", async ({ me }) => {
  const C = Console;
  const { $, h, api, replace, LABELS, badge, fmtTime, toast, busy, showError, download } = C;
  const campaign = await C.campaignFor(me);
  if (!campaign) {
    C.noCampaign($(".rankings"));
    return;
  }
  C.campaignPicker($(".campaign-picker"), campaign);
  const PARTS = { measures: "宣传措施", timeliness: "报送时效", inspection: "检查", deductions: "督办扣分", bonus: "经验做法加分" };
  const asOf = $(".as-of-input");
  const today = new Date().toISOString().slice(0, 10);
  asOf.value = campaign.publicity_end && campaign.publicity_end < today ? campaign.publicity_end : today;
  const period = $(".circular-form").elements.period;
  const end = campaign.publicity_end || today;
  period.value = `${end.slice(0, 4)}-Q${Math.floor((Number(end.slice(5, 7)) - 1) / 3) + 1}`;

  const num = (x) => (x == null ? "—" : String(Math.round(Number(x) * 100) / 100));

  function unitRows(unit, partNames) {
    const lines = h("tr.lines", { hidden: true }, h("td", { colspan: partNames.length + 3 },
      h("ul.score-lines", (unit.lines || []).map((l) => h("li", { class: l.points < 0 ? "deduction" : null },
        h("strong", `${l.points > 0 ? "+" : ""}${num(l.points)}`), l.max_points ? h("span.muted", ` / ${num(l.max_points)}`) : null,
        ` ${PARTS[l.part] || l.part}：${l.note}`)))));
    const toggle = h("button.btn.btn-quiet.small", { type: "button", "aria-expanded": "false" }, "明细");
    toggle.addEventListener("click", () => {
      lines.hidden = !lines.hidden;
      toggle.setAttribute("aria-expanded", String(!lines.hidden));
    });
    const row = h("tr", { dataset: { unit: unit.code, rank: unit.rank } },
      h("td.rank", unit.level_size ? `${unit.rank} / ${unit.level_size}` : String(unit.rank)), h("th", { scope: "row" }, unit.name, " ", toggle),
      partNames.map((p) => {
        const value = (unit.parts || {})[p];
        return h("td.num", p === "deductions" && value > 0 ? `−${num(value)}` : num(value));
      }), h("td.num.total", num(unit.total)));
    return [row, lines];
  }

  const LEVEL_ORDER = ["city", "county", "member", "township", "village"];
  const levelRank = (level) => (LEVEL_ORDER.includes(level) ? LEVEL_ORDER.indexOf(level) : LEVEL_ORDER.length);

  /** The API's flat rows grouped by level (top of the tree first), each in rank order. */
  function byLevel(units) {
    const groups = new Map();
    for (const unit of units) {
      if (!groups.has(unit.level)) groups.set(unit.level, { level: unit.level, name: unit.level_name, units: [] });
      groups.get(unit.level).units.push(unit);
    }
    const levels = Array.from(groups.values()).sort((a, b) => levelRank(a.level) - levelRank(b.level) || a.level.localeCompare(b.level));
    for (const level of levels) level.units.sort((a, b) => a.rank - b.rank || a.code.localeCompare(b.code));
    return levels;
  }

  async function loadRanking() {
    const where = $(".rankings");
    replace(where, h("p.muted", "计算中……"));
    try {
      const result = await api("review", "/assessment", { query: { campaign_id: campaign.id, as_of: asOf.value } });
      const levels = result.levels || byLevel(result.units || []);
      if (!levels.length) {
        replace(where, h("p.muted", "暂无可排名的单位"));
        return;
      }
      replace(where, h("p.muted", `统计截至 ${fmtTime(result.as_of)}${result.max_total ? ` · 满分 ${num(result.max_total)}` : ""}`), levels.map((level) => {
        const partNames = Object.keys(PARTS).filter((p) => level.units.some((u) => u.parts && p in u.parts));
        return h("section.card.ranking", { dataset: { level: level.level } },
          h("h2", `${level.name || LABELS.level[level.level] || level.level}排名`),
          h("div.table-wrap", h("table.table.rank-table",
            h("thead", h("tr", h("th", "名次"), h("th", "单位"), partNames.map((p) => h("th.num", PARTS[p])), h("th.num", "总分"))),
            h("tbody", level.units.map((u) => unitRows(u, partNames))))));
      }));
    } catch (error) {
      showError(error, where, "考核排名");
    }
  }

  function circularRow(c) {
    const files = ["docx", "xlsx"].map((kind) => {
      const button = h("button.btn.btn-quiet", { type: "button", dataset: { kind } }, kind === "docx" ? "下载 Word" : "下载 Excel");
      button.addEventListener("click", () => download("review", `/circulars/${encodeURIComponent(c.id)}/files/${kind}`, `${c.title || "通报"}.${kind}`)
        .catch((error) => showError(error, null, "通报下载")));
      return button;
    });
    const published = c.state === "published";
    const publish = !published && me.role === "admin" ? h("button.btn.btn-primary", { type: "button" }, "发布") : null;
    if (publish) {
      publish.addEventListener("click", async () => {
        if (!window.confirm(`确定发布《${c.title}》？发布后各单位联络员会收到通知，且不能撤回。`)) return;
        busy(publish, true);
        try {
          await api("review", `/circulars/${encodeURIComponent(c.id)}/publish`, { method: "POST" });
          toast("通报已发布");
          await loadCirculars();
        } catch (error) {
          busy(publish, false);
          showError(error, null, "发布通报");
        }
      });
    }
    return h("li.circular", { dataset: { circular: c.id, state: c.state } },
      h("strong", c.title || c.period), " ", badge(published ? "已发布" : "草稿", published ? "good" : "quiet"),
      h("span.muted.small", ` ${c.period} · 第 ${c.revision} 版 · ${fmtTime(c.created_at)}`), h("div.actions", files, publish));
  }

  async function loadCirculars() {
    const where = $(".circular-list");
    try {
      const rows = await api("review", "/circulars", { query: { campaign_id: campaign.id } });
      replace(where, rows.length ? h("ul.circulars-list", rows.map(circularRow)) : h("p.muted", "尚未生成通报"));
    } catch (error) {
      showError(error, where, "通报");
    }
  }

  const form = $(".circular-form");
  if (me.role !== "admin") form.hidden = true;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    busy(button, true, "生成中……");
    try {
      await api("review", "/circulars", { method: "POST", json: { campaign_id: campaign.id, period: period.value.trim() } });
      toast("通报已生成");
      await loadCirculars();
    } catch (error) {
      showError(error, null, "生成通报");
    } finally {
      busy(button, false);
    }
  });
  $(".refresh").addEventListener("click", loadRanking);
  asOf.addEventListener("change", loadRanking);
  await Promise.all([loadRanking(), loadCirculars()]);
});
