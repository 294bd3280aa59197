/* 督办通知：本单位收到的督办，在整改期限内反馈整改情况。 */
Console.page("notices", async () => {
  const { $, h, api, replace, LABELS, badge, fmtTime, countdown, toast, formError, busy, showError } = Console;
  const where = $(".notice-list");
  const ORDER = { open: 0, responded: 1, closed: 2 };

  function card(s) {
    const left = s.rectify_by ? countdown(s.rectify_by) : null;
    const form = s.state === "open" ? h("form.respond-form.stack",
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
          await api("review", `/supervisions/${encodeURIComponent(s.id)}/respond`, { method: "POST", json: { response: form.elements.response.value.trim() } });
          toast("已提交整改反馈");
          await load();
        } catch (error) {
          busy(button, false);
          formError(form, error);
        }
      });
    }
    return h("article.card.supervision-card", { class: `edge-${s.level === "blue" ? "blue" : s.level}`, dataset: { supervision: s.id, level: s.level, state: s.state } },
      h("header.task-head", h("h3", `${LABELS.supervisionLevel[s.level] || s.level}督办 · ${LABELS.method[s.method] || s.method}`),
        badge(LABELS.supervisionState[s.state] || s.state, s.state === "closed" ? "good" : s.state === "responded" ? "wait" : "bad")),
      h("p", s.reason),
      h("p.muted.small", `发起：${s.opened_by === "system" ? "系统自动" : s.opened_by} · ${fmtTime(s.opened_at)}`,
        s.rectify_by ? [` · 整改期限 ${fmtTime(s.rectify_by)} `, badge(left.text, left.tone)] : null),
      s.response ? h("p.response", h("strong", "本单位反馈："), s.response) : null,
      s.outcome ? h("p.outcome", h("strong", "办结意见："), s.outcome) : null,
      form);
  }

  async function load() {
    try {
      const rows = await api("review", "/supervisions", { query: { limit: 200 } });
      rows.sort((a, b) => (ORDER[a.state] ?? 3) - (ORDER[b.state] ?? 3) || String(b.opened_at).localeCompare(String(a.opened_at)));
      replace(where, rows.length ? rows.map(card) : h("p.muted", "没有督办通知"));
    } catch (error) {
      showError(error, where, "督办通知");
    }
  }
  await load();
});
