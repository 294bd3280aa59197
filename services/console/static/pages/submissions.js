/* 我的报送：本单位报送的材料、状态与审核意见。 */
Console.page("submissions", async ({ me, root }) => {
  const { $, h, api, replace, stateBadge, fmtTime, campaignFor, measureNames, measureLabel, showError } = Console;
  const campaign = await campaignFor(me).catch(() => null);
  const names = measureNames(campaign);
  const filter = $(".state-filter");
  const where = $(".submission-list");

  async function load() {
    try {
      const rows = await api("intake", "/submissions", { query: { state: filter.value, limit: 500 } });
      replace(where, rows.length ? h("ul.cards", rows.map((s) => h("li.card.submission-card", { dataset: { submission: s.id, state: s.state, measure: s.measure_code } },
        h("header.task-head", h("h3", h("a", { href: `${root}/submissions/${encodeURIComponent(s.id)}` }, s.title)), stateBadge(s.state)),
        h("p.muted.small", `${measureLabel(names, s.measure_code, s.kind)} · 第 ${s.version} 版 · 报送于 ${fmtTime(s.submitted_at || s.created_at)}`
          + ` · 佐证资料 ${s.evidence.length} 份`),
        s.review_comment ? h("p.review-comment", h("strong", "审核意见："), s.review_comment) : null))) : h("p.muted", "还没有报送材料"));
    } catch (error) {
      showError(error, where, "报送列表");
    }
  }
  filter.addEventListener("change", load);
  await load();
});
