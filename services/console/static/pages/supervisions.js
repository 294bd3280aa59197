/* 督办看板：按蓝、黄、红分栏；发起、反馈（管理员代单位）、办结。 */
Console.page("supervisions", async ({ me }) => {
  const C = Console;
  const { $, $$, h, api, replace, LABELS, badge, fmtTime, countdown, toast, formError, busy, showError } = C;
  const campaign = await C.campaignFor(me).catch(() => null);
  C.campaignPicker($(".campaign-picker"), campaign);
  const units = await C.unitsById(campaign).catch(() => new Map());
  const unitName = (id) => (units.has(id) ? units.get(id).name : `单位 ${String(id).slice(0, 8)}`);
  const canOpen = ["admin", "reviewer"].includes(me.role);
  const filter = $(".state-filter");
  const openForm = $(".open-form");

  if (canOpen && campaign) {
    const button = $(".open-case");
    button.hidden = false;
    const select = openForm.elements.unit_id;
    for (const unit of Array.from(units.values()).filter((u) => u.participates).sort((a, b) => a.unit_path.localeCompare(b.unit_path))) {
      select.append(h("option", { value: unit.id }, unit.name));
    }
    button.addEventListener("click", () => { openForm.hidden = false; select.focus(); });
    $(".cancel", openForm).addEventListener("click", () => { openForm.hidden = true; });
    openForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      formError(openForm, null);
      const v = openForm.elements;
      const body = { campaign_id: campaign.id, unit_id: v.unit_id.value, level: v.level.value, method: v.method.value, reason: v.reason.value.trim() };
      if (v.rectify_by.value) body.rectify_by = `${v.rectify_by.value}T23:59:59+08:00`;
      const submit = openForm.querySelector("button[type=submit]");
      busy(submit, true);
      try {
        await api("review", "/supervisions", { method: "POST", json: body });
        busy(submit, false);
        openForm.reset();
        openForm.hidden = true;
        toast("已发起督办");
        await load();
      } catch (error) {
        busy(submit, false);
        formError(openForm, error);
      }
    });
  }

  function action(s, kind) {
    const spec = kind === "close"
      ? { label: "办结", field: "outcome", prompt: "办结意见", path: "close" }
      : { label: "代为反馈", field: "response", prompt: "整改情况", path: "respond" };
    const form = h("form.inline-form.stack", { hidden: true },
      h("label.field", spec.prompt, h("textarea", { name: spec.field, rows: 3, required: true })),
      h("p.form-error", { role: "alert", hidden: true }),
      h("div.actions", h("button.btn.btn-primary", { type: "submit" }, `确认${spec.label}`)));
    const open = h("button.btn.btn-quiet", { type: "button", class: `act-${kind}` }, spec.label);
    open.addEventListener("click", () => { form.hidden = !form.hidden; if (!form.hidden) form.elements[spec.field].focus(); });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      formError(form, null);
      const button = form.querySelector("button");
      busy(button, true);
      try {
        await api("review", `/supervisions/${encodeURIComponent(s.id)}/${spec.path}`, { method: "POST", json: { [spec.field]: form.elements[spec.field].value.trim() } });
        toast(`已${spec.label}`);
        await load();
      } catch (error) {
        busy(button, false);
        formError(form, error);
      }
    });
    return [open, form];
  }

  function card(s) {
    const left = s.rectify_by && s.state !== "closed" ? countdown(s.rectify_by) : null;
    const history = h("details.history", h("summary", "经过"), h("ol.timeline"));
    history.addEventListener("toggle", async () => {
      if (!history.open) return;
      try {
        const detail = await api("review", `/supervisions/${encodeURIComponent(s.id)}`);
        replace($(".timeline", history), detail.changes.map((c) => h("li", h("span.muted.small", fmtTime(c.at)), " ",
          h("strong", c.action), ` ${c.actor} · ${LABELS.supervisionLevel[c.level] || c.level} · ${LABELS.method[c.method] || c.method}`,
          c.note ? h("div.muted.small", c.note) : null)));
      } catch (error) {
        showError(error, $(".timeline", history), "督办经过");
      }
    });
    return h("article.card.supervision-card", { dataset: { supervision: s.id, state: s.state, level: s.level } },
      h("header.task-head", h("h3", unitName(s.unit_id)),
        badge(LABELS.supervisionState[s.state] || s.state, s.state === "closed" ? "good" : s.state === "responded" ? "wait" : "bad")),
      h("p.small", `${LABELS.method[s.method] || s.method}督办 · ${fmtTime(s.opened_at)} · ${s.opened_by === "system" ? "系统自动" : s.opened_by}`, s.escalations ? badge(`升级 ${s.escalations} 次`, "bad") : null),
      h("p", s.reason),
      left ? h("p.small", `整改期限 ${fmtTime(s.rectify_by)} `, badge(left.text, left.tone)) : null,
      s.response ? h("p.response", h("strong", "反馈："), s.response) : null,
      s.outcome ? h("p.outcome", h("strong", "办结："), s.outcome) : null,
      h("div.actions",
        s.state === "open" && me.role === "admin" ? action(s, "respond") : null,
        s.state !== "closed" && canOpen ? action(s, "close") : null),
      history);
  }

  async function load() {
    const state = filter.value;
    try {
      const rows = await api("review", "/supervisions", {
        query: { campaign_id: campaign ? campaign.id : "", state: state === "active" ? "" : state, limit: 500 } });
      const shown = state === "active" ? rows.filter((s) => s.state !== "closed") : rows;
      for (const column of $$(".board-col")) {
        const mine = shown.filter((s) => s.level === column.dataset.level);
        $("h2", column).textContent = `${LABELS.supervisionLevel[column.dataset.level]}督办（${mine.length}）`;
        replace($(".cards", column), mine.length ? mine.map(card) : h("p.muted", "无"));
      }
    } catch (error) {
      showError(error, $(".board"), "督办");
    }
  }
  filter.addEventListener("change", load);
  await load();
});
