/* 检查记录：一次检查的方式、日期、核实的措施、群众和干部知晓情况、发现的问题、得分及由此发起的督办。 */
Console.page("inspection", async ({ me, params, root }) => {
  const { $, h, api, replace, LABELS, fmtDate, fmtTime, badge } = Console;
  if (me.role === "unit") Object.assign($(".back"), { href: `${root}/tasks`, textContent: "← 返回我的任务" });
  const inspection = await api("review", `/inspections/${encodeURIComponent(params.inspectionId)}`);
  const unit = await api("intake", `/units/${encodeURIComponent(inspection.unit_id)}`).catch(() => null);
  const unitName = unit ? unit.name : inspection.unit_id;
  document.title = `检查记录 · ${unitName} · 宣传月佐证平台`;
  $(".page-title").textContent = `检查记录 · ${unitName}`;
  const ratio = (a, b) => (b ? `${a} / ${b}` : "—");
  replace($(".inspection-info"),
    h("p.state-line", badge(LABELS.method[inspection.method] || inspection.method, "quiet"), ` ${fmtDate(inspection.inspected_on)} · 检查人 ${inspection.inspector}`,
      inspection.score != null ? [" ", badge(`得分 ${inspection.score}${inspection.max_points != null ? ` / ${inspection.max_points}` : ""}`, "good")] : null),
    h("dl.facts",
      h("dt", "被检查单位"), h("dd", h("a", { href: `${root}/units/${encodeURIComponent(inspection.unit_id)}` }, unitName)),
      h("dt", "核实的措施"), h("dd", inspection.measures_verified.join("、") || "—"),
      h("dt", "群众知晓"), h("dd", `${ratio(inspection.residents_aware, inspection.residents_asked)}（会用 ${inspection.residents_able}）`),
      h("dt", "干部熟练"), h("dd", ratio(inspection.staff_proficient, inspection.staff_tested)),
      h("dt", "记录时间"), h("dd", fmtTime(inspection.recorded_at))),
    inspection.findings ? h("p.findings", h("strong", "检查情况："), inspection.findings) : null,
    inspection.problems.length ? h("div", h("strong", "发现的问题："), h("ul.problems", inspection.problems.map((p) => h("li", p)))) : null,
    inspection.supervision_ids.length ? h("p", h("strong", "由此发起的督办："), inspection.supervision_ids.map((id, n) =>
      [n ? "、" : "", h("a", { href: `${root}/supervisions/${encodeURIComponent(id)}` }, `督办 ${n + 1}`)])) : null);
  document.body.dataset.inspection = inspection.id;
});
