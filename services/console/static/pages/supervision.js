/* 督办详情：等级、原因、整改期限、反馈与办结，以及每一步的记录；被督办单位可在此提交整改反馈。 */
Console.page("supervision", async ({ me, params, root }) => {
  const { $, h, api, replace, LABELS, fmtTime, badge, countdown, toast, formError, busy } = Console;
  const id = encodeURIComponent(params.supervisionId);
  const ACTIONS = { opened: "发起", escalated: "升级", responded: "反馈", closed: "办结" };
  if (me.role === "unit") Object.assign($(".back"), { href: `${root}/notices`, textContent: "← 返回督办通知" });

  async function load() {
    const s = await api("review", `/supervisions/${id}`);
    const unit = await api("intake", `/units/${encodeURIComponent(s.unit_id)}`).catch(() => null);
    const left = s.rectify_by && s.state === "open" ? countdown(s.rectify_by) : null;
    $(".page-title").textContent = `${LABELS.supervisionLevel[s.level] || s.level}督办 · ${unit ? unit.name : s.unit_id}`;
    const form = s.state === "open" && me.role === "unit" ? h("form.respond-form.stack",
      h("label.field", "整改情况", h("textarea", { name: "response", rows: 4, required: true, maxlength: 20000 })),
      h("p.form-error", { role: "alert", hidden: true }),
      h("div.actions", h("button.btn.btn-primary", { type: "submit" }, "提交反馈"))) : null;
    if (form) {
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const button = form.querySelector("button");
        formError(form, null);
        busy(button, true);
        try {
          await api("review", `/supervisions/${id}/respond`, { method: "POST", json: { response: form.elements.response.value.trim() } });
          toast("已提交整改反馈");
          await load();
        } catch (error) {
          busy(button, false);
          formError(form, error);
        }
      });
    }
    replace($(".supervision-info"),
      h("p.state-line", badge(LABELS.supervisionState[s.state] || s.state, s.state === "closed" ? "good" : s.state === "responded" ? "wait" : "bad"),
        ` ${LABELS.method[s.method] || s.method} · 发起：${s.opened_by === "system" ? "系统自动" : s.opened_by} · ${fmtTime(s.opened_at)}`),
      h("p.reason", s.reason),
      s.rectify_by ? h("p", `整改期限 ${fmtTime(s.rectify_by)} `, left ? badge(left.text, left.tone) : null) : null,
      s.response ? h("p.response", h("strong", "单位反馈："), s.response) : null,
      s.outcome ? h("p.outcome", h("strong", "办结意见："), s.outcome) : null,
      form,
      s.changes && s.changes.length ? h("ol.history", s.changes.map((c) => h("li.small",
        `${fmtTime(c.at)} · ${c.actor || ""} · ${ACTIONS[c.action] || c.action}${c.note ? `：${c.note}` : ""}`))) : null);
    document.body.dataset.supervisionState = s.state;
  }
  await load();
});
