/* 报送详情：状态与审核意见、佐证资料（缩略图、视频）、拖放上传（可续传）、重新报送、评论。 */
Console.page("submission", async ({ me, params, root, query }) => {
  const C = Console;
  const { $, h, api, replace, badge, stateBadge, fmtTime, toast, formError, busy, showError } = C;
  const id = params.submissionId;
  const UPLOADABLE = ["submitted", "under_review", "returned"];
  if (me.role !== "unit") $(".back").href = `${root}/dashboard`;

  const submission = await api("intake", `/submissions/${encodeURIComponent(id)}`);
  const campaign = submission.campaign_id
    ? await api("intake", `/campaigns/${encodeURIComponent(submission.campaign_id)}`).catch(() => null) : null;
  const names = C.measureNames(campaign);
  let review = null;
  try {
    review = await api("review", `/submissions/${encodeURIComponent(id)}`);
  } catch (error) {
    review = null;  // review has not heard of it yet, or is not reachable: the intake view is enough
  }
  document.title = `${submission.title} · 宣传月佐证平台`;
  $(".page-title").textContent = submission.title;

  const topics = new Map(((campaign && campaign.definition && campaign.definition.topics) || []).map((t) => [t.code, t.name]));
  const status = submission.evidence_status;
  const comment = submission.review_comment || (review && review.version === submission.version ? review.comment : null);
  replace($(".submission-info"),
    h("p.state-line", stateBadge(submission.state), ` ${C.measureLabel(names, submission.measure_code, submission.kind)} · 第 ${submission.version} 版`,
      submission.late ? badge("逾期报送", "wait") : null, submission.outside_window ? badge("活动日期不在宣传期内", "bad") : null),
    comment ? h("p.review-comment", h("strong", "审核意见："), comment) : null,
    review && review.decided_at && review.version === submission.version && review.score != null
      ? h("p", `得分 ${review.score} · ${review.decided_by || ""} 于 ${fmtTime(review.decided_at)}`) : null,
    h("dl.facts",
      h("dt", "报送时间"), h("dd", fmtTime(submission.submitted_at) || "—"),
      h("dt", "活动日期"), h("dd", submission.held_on || "—"),
      h("dt", "地点"), h("dd", submission.place || "—"),
      h("dt", "参与人数"), h("dd", submission.participants ?? "—"),
      h("dt", "宣传重点"), h("dd", submission.topics.map((t) => topics.get(t) || t).join("、") || "—"),
      h("dt", "佐证资料"), h("dd.evidence-status", status
        ? `${status.count} / ${status.required_count} 份${status.satisfied ? "（已满足要求）" : "（不足）"}` : `${submission.evidence.length} 份`)),
    submission.description ? h("p.description", submission.description) : null);

  const grid = $(".evidence-grid");
  async function loadEvidence(refreshStatus = false) {
    if (refreshStatus) {
      api("intake", `/submissions/${encodeURIComponent(id)}`).then((fresh) => {
        const now = fresh.evidence_status;
        if (now) $(".evidence-status").textContent = `${now.count} / ${now.required_count} 份${now.satisfied ? "（已满足要求）" : "（不足）"}`;
      }).catch(() => null);
    }
    try {
      const rows = await api("evidence", `/submissions/${encodeURIComponent(id)}/evidence`);
      replace(grid, rows.length ? rows.map((e) => C.evidenceTile({ ...e, evidence_id: e.id },
        e.outside_window ? [["拍摄时间不在宣传期内", "bad"]] : [])) : h("p.muted", "尚未上传佐证资料"));
    } catch (error) {
      if (error instanceof C.ApiFailure && error.status === 404 && !error.missingRoute) {
        replace(grid, h("p.muted", "佐证资料服务正在接收这份材料，请稍候刷新"));
      } else {
        showError(error, grid, "佐证资料");
      }
    }
  }

  const mayUpload = ["unit", "admin"].includes(me.role) && UPLOADABLE.includes(submission.state);
  if (mayUpload) {
    const card = $(".upload-card");
    card.hidden = false;
    let refresh = null;
    const uploader = window.Uploader.mount($(".uploader", card), id, {
      onUploaded: (evidence) => {
        toast(`已上传：${evidence.filename}`);
        clearTimeout(refresh);
        refresh = setTimeout(() => loadEvidence(true), 300);
      },
      grant: submission.upload_grant,
    });
    if (!submission.upload_grant) uploader.setReady(window.Uploader.whenUploadable(id, uploader.status));
    if (query.get("new")) {
      toast("材料已提交，请上传佐证资料");
      card.scrollIntoView({ block: "start" });
    }
  }

  if (submission.state === "returned" && ["unit", "admin"].includes(me.role)) {
    const card = $(".resubmit-card");
    const form = $(".resubmit-form", card);
    card.hidden = false;
    form.elements.title.value = submission.title;
    form.elements.description.value = submission.description;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      formError(form, null);
      const button = form.querySelector("button");
      busy(button, true);
      try {
        await api("intake", `/submissions/${encodeURIComponent(id)}/resubmit`, { method: "POST",
          json: { title: form.elements.title.value.trim(), description: form.elements.description.value } });
        toast("已重新报送");
        setTimeout(() => location.reload(), 600);
      } catch (error) {
        busy(button, false);
        formError(form, error);
      }
    });
  }

  await Promise.all([loadEvidence(), C.commentThread($(".comments"), id, me)]);
});
