/* 我的任务：本单位每项宣传措施的完成情况，还缺什么，一键去报送。 */
Console.page("tasks", async ({ me, root }) => {
  const { $, h, api, replace, LABELS, badge, stateBadge, campaignFor, noCampaign, deadlineList, showError } = Console;
  const campaign = await campaignFor(me);
  if (!campaign) {
    noCampaign();
    return;
  }
  const definition = campaign.definition || {};
  deadlineList($(".deadline-list"), definition.deadlines || []);
  const [unit, coverage, submissions] = await Promise.all([
    api("intake", `/units/${encodeURIComponent(me.unit_id)}`),
    api("intake", `/campaigns/${encodeURIComponent(campaign.id)}/coverage`, { query: { unit_id: me.unit_id } }).catch((error) => {
      showError(error, null, "覆盖情况");
      return null;
    }),
    api("intake", "/submissions", { query: { unit_id: me.unit_id, limit: 1000 } }),
  ]);
  const row = coverage && coverage.units.find((u) => u.unit_id === me.unit_id);

  const liaison = unit.liaison_name
    ? [`联络员：${unit.liaison_name}`, unit.liaison_late ? badge("逾期明确", "wait") : badge("已明确", "good")]
    : [badge("尚未明确联络员", "bad")];
  const approved = row ? Object.values(row.cells).filter((c) => c.state === "approved").length : 0;
  const total = (definition.measures || []).length;
  replace($(".unit-summary"), h("h2", unit.name), h("p", `${campaign.name} · 宣传期 ${campaign.publicity_start} 至 ${campaign.publicity_end}`),
    h("p", ...liaison), h("p.progress-line", `已完成 ${approved} / ${total} 项宣传措施`));

  const live = (s) => !["withdrawn", "draft"].includes(s.state);
  const kinds = (list) => (list || []).map((k) => LABELS.evidenceKind[k] || k).join("或");

  function missingText(state, latest, need) {
    if (state === "approved") return "已完成";
    if (state === "returned") {
      return latest && latest.review_comment ? `已退回：${latest.review_comment}。请修改后重新报送。` : "已退回，请按审核意见修改后重新报送。";
    }
    if (state === "submitted") {
      const status = latest && latest.evidence_status;
      if (status && !status.satisfied) {
        return `佐证资料不足：已有 ${status.count} 份，至少需要 ${status.required_count} 份（${kinds(status.accepted_kinds)}）`;
      }
      return "已报送，等待审核";
    }
    return `尚未报送：至少需要 ${need.min_count} 份${kinds(need.kinds)}作为佐证资料`;
  }

  function card({ code, name, description, need, kind, state, colour, mine }) {
    const latest = mine[0];
    const query = kind === "measure" ? `measure=${encodeURIComponent(code)}` : `kind=${kind}`;
    const canStart = !latest || ["rejected"].includes(latest.state);
    return h("article.task.card", { dataset: { measure: code, state }, class: `edge-${colour}` },
      h("header.task-head", h("h3", kind === "measure" ? `${code} ${name}` : name), stateBadge(state)),
      description ? h("p.muted", description) : null,
      h("p.missing", missingText(state, latest, need)),
      h("div.actions",
        canStart ? h("a.btn.btn-primary.report", { href: `${root}/submit?${query}` }, "报送") : null,
        latest ? h("a.btn", { href: `${root}/submissions/${encodeURIComponent(latest.id)}` },
          latest.state === "returned" ? "修改并重新报送" : latest.state === "submitted" ? "补充佐证资料" : "查看") : null));
  }

  const cards = (definition.measures || []).map((m) => {
    const cell = row ? row.cells[m.code] : { state: "missing", colour: "red" };
    const mine = submissions.filter((s) => s.kind === "measure" && s.measure_code === m.code && live(s));
    return card({ code: m.code, name: m.name, description: m.description, need: m.evidence || { min_count: 1, kinds: [] },
      kind: "measure", state: cell.state, colour: cell.colour, mine });
  });
  const summaryMine = submissions.filter((s) => s.kind === "summary_report" && live(s));
  const summary = row ? row.summary_report : { state: "missing", colour: "red" };
  cards.push(card({ code: "summary", name: "活动总结", description: "活动结束后报送总结，附视频或照片。",
    need: { min_count: 1, kinds: ["document", "photo", "video"] }, kind: "summary_report", state: summary.state,
    colour: summary.colour, mine: summaryMine }));
  const practices = submissions.filter((s) => s.kind === "good_practice" && live(s)).length;
  cards.push(h("article.task.card", { dataset: { measure: "good_practice" } },
    h("header.task-head", h("h3", "经验做法"), badge(`已报送 ${practices} 篇`, practices ? "good" : "quiet")),
    h("p.muted", "好的经验做法可随时报送。"),
    h("div.actions", h("a.btn", { href: `${root}/submit?kind=good_practice` }, "报送经验做法"))));
  replace($(".task-list"), cards);
});
