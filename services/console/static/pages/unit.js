/* 单位详情：联络员、各项措施的状态、报送材料与时间线。 */
Console.page("unit", async ({ me, params, root }) => {
  const { $, h, api, replace, LABELS, stateBadge, badge, fmtTime, measureNames, measureLabel, timelineItems, showError } = Console;
  const unitId = params.unitId;
  const unit = await api("intake", `/units/${encodeURIComponent(unitId)}`);
  document.title = `${unit.name} · 宣传月佐证平台`;
  $(".page-title").textContent = unit.name;
  const liaison = unit.liaison_name
    ? [unit.liaison_name, unit.liaison_email ? ` · ${unit.liaison_email}` : "", unit.liaison_phone ? ` · ${unit.liaison_phone}` : "",
      unit.liaison_late ? badge("逾期明确", "wait") : null]
    : [badge("未明确联络员", "bad")];
  replace($(".unit-info"), h("dl.facts",
    h("dt", "代码"), h("dd", unit.code),
    h("dt", "层级"), h("dd", LABELS.level[unit.level] || unit.level),
    h("dt", "联络员"), h("dd.liaison", liaison),
    h("dt", "明确时间"), h("dd", unit.liaison_designated_at ? fmtTime(unit.liaison_designated_at) : "—")));

  let names = new Map();
  if (unit.campaign_id) {
    try {
      const campaign = await api("intake", `/campaigns/${encodeURIComponent(unit.campaign_id)}`);
      names = measureNames(campaign);
      const coverage = await api("intake", `/campaigns/${encodeURIComponent(unit.campaign_id)}/coverage`, { query: { unit_id: unitId } });
      const row = coverage.units.find((u) => u.unit_id === unitId);
      if (row) {
        replace($(".unit-cells"), h("ul.cell-list", coverage.measures.map((m) => {
          const data = row.cells[m.code];
          return h("li.cell-chip", { class: `cell-${data.colour}`, dataset: { measure: m.code } },
            h("strong", `${m.code} ${m.name}`), " ", `${LABELS.state[data.state] || data.state}（${data.count} 份）`);
        }), h("li.cell-chip", { class: `cell-${row.summary_report.colour}` }, h("strong", "活动总结"), " ",
          LABELS.state[row.summary_report.state] || row.summary_report.state)));
      } else {
        replace($(".unit-cells"), h("p.muted", "该单位不参加本活动的覆盖统计"));
      }
    } catch (error) {
      showError(error, $(".unit-cells"), "覆盖情况");
    }
  } else {
    replace($(".unit-cells"), h("p.muted", "该单位不属于任何活动"));
  }

  try {
    const rows = await api("intake", "/submissions", { query: { unit_id: unitId, limit: 200 } });
    replace($(".unit-submissions"), rows.length ? h("table.table",
      h("thead", h("tr", h("th", "标题"), h("th", "措施"), h("th", "状态"), h("th", "报送时间"), h("th", "审核意见"))),
      h("tbody", rows.map((s) => h("tr", { dataset: { submission: s.id } },
        h("td", h("a", { href: `${root}/submissions/${encodeURIComponent(s.id)}` }, s.title)),
        h("td", measureLabel(names, s.measure_code, s.kind)), h("td", stateBadge(s.state)),
        h("td", fmtTime(s.submitted_at)), h("td", s.review_comment || ""))))) : h("p.muted", "尚无报送材料"));
  } catch (error) {
    showError(error, $(".unit-submissions"), "报送材料");
  }

  try {
    const records = await api("review", `/units/${encodeURIComponent(unitId)}/timeline`);
    replace($(".unit-timeline"), timelineItems(records.slice().reverse()));
  } catch (error) {
    if (error instanceof Console.ApiFailure && error.status === 404 && !error.missingRoute) {
      replace($(".unit-timeline"), h("li.muted", "暂无记录"));
    } else {
      showError(error, $(".unit-timeline"), "时间线");
    }
  }
});
