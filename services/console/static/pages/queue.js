/* 审核队列：筛选、逐条审核（照片网格、视频、标记、通过/退回/驳回、评论）、批量操作、键盘快捷键。 */
Console.page("queue", async ({ me, root }) => {
  const C = Console;
  const { $, $$, h, api, replace, LABELS, badge, stateBadge, fmtTime, toast, showError, formError, measureLabel } = C;

  const form = $(".queue-filters");
  const list = $(".queue-list");
  const panel = $(".queue-item");
  const dialog = $(".decision-dialog");
  const decisionForm = $(".decision-form", dialog);
  const bulkCount = $(".bulk-count");
  const selectAll = $(".select-all");

  let items = [];
  let index = -1;
  let current = null;
  const chosen = new Set();

  const campaign = await C.campaignFor(me).catch(() => null);
  const names = C.measureNames(campaign);
  const units = await C.unitsById(null).catch(() => new Map());
  const unitName = (id) => (units.has(id) ? units.get(id).name : `单位 ${String(id).slice(0, 8)}`);

  // ---------------------------------------------------------------- filters

  for (const [code, name] of names) form.elements.measure_code.append(h("option", { value: code }, `${code} ${name}`));
  const byPath = Array.from(units.values()).sort((a, b) => a.unit_path.localeCompare(b.unit_path));
  for (const unit of byPath) form.elements.unit_id.append(h("option", { value: unit.id }, unit.name));
  const initial = new URLSearchParams(location.search);
  for (const name of ["state", "measure_code", "unit_id", "flag", "text_finding", "text"]) {
    if (initial.get(name)) form.elements[name].value = initial.get(name);
  }
  form.elements.assigned_to.checked = initial.get("assigned_to") === "me";

  function filters() {
    const values = {
      state: form.elements.state.value, measure_code: form.elements.measure_code.value,
      unit_id: form.elements.unit_id.value, flag: form.elements.flag.value,
      text_finding: form.elements.text_finding.value, text: form.elements.text.value.trim(),
      assigned_to: form.elements.assigned_to.checked ? "me" : "",
    };
    const query = new URLSearchParams(Object.entries(values).filter(([, v]) => v));
    history.replaceState(null, "", `${location.pathname}${query.toString() ? `?${query}` : ""}${location.hash}`);
    return values;
  }

  form.addEventListener("change", () => load());
  form.addEventListener("submit", (event) => { event.preventDefault(); load(); });

  // ---------------------------------------------------------------- flags

  function others(unitIds) {
    const named = unitIds.map((id) => (String(id).startsWith("unknown:") ? "其他单位" : unitName(id)));
    return Array.from(new Set(named)).join("、");
  }

  /** One badge per duplicate link: whose file, exact or similar, and which came first (对方在先 / 本件在先). */
  function evidenceFlags(item, evidence) {
    const flags = [];
    if (evidence.outside_window) flags.push(["超出宣传时间", "bad"]);
    const links = evidence.duplicates || [];
    for (const link of links) {
      const who = link.unit_id ? unitName(link.unit_id) : "其他单位";
      const what = link.match === "exact" ? "重复" : "相似";
      const order = link.came_first === "other" ? `${who}先上传，本件在后` : `本件先上传，${who}后上传`;
      flags.push([`与${who}照片${what}（${order}）`, link.match === "exact" ? "bad" : "wait"]);
    }
    if (!links.length) {
      const same = (item.duplicates || {})[evidence.evidence_id] || [];
      const near = (item.near_duplicates || {})[evidence.evidence_id] || [];
      if (same.length) flags.push([`与${others(same)}照片重复`, "bad"]);
      else if ((evidence.flags || []).includes("duplicate")) flags.push(["重复照片", "bad"]);
      if (near.length) flags.push([`与${others(near)}照片相似`, "wait"]);
      else if ((evidence.flags || []).includes("near_duplicate")) flags.push(["相似照片", "wait"]);
    }
    return flags;
  }

  function itemFlags(item) {
    const flags = new Set(item.flags || []);
    if (item.outside_window) flags.add("outside_window");
    return Array.from(flags).map((flag) => badge(LABELS.flag[flag] || flag, flag === "near_duplicate" ? "wait" : "bad"));
  }

  // ---------------------------------------------------------------- the text read in photos (OCR)

  const TEXT_FINDING = {
    keywords_found: ["含活动关键词", "good"], no_campaign_text: ["未见活动文字", "bad"], unread: ["文字未识别", "quiet"],
  };

  function textBadge(finding) {
    return TEXT_FINDING[finding] ? badge(...TEXT_FINDING[finding]) : null;
  }

  // the recognised text with each matched keyword's characters in <mark>
  function highlighted(text, matches) {
    const found = Array.from(new Set((matches || []).map((m) => m.found).filter(Boolean)))
      .sort((a, b) => b.length - a.length);
    if (!found.length) return [text];
    const parts = [];
    let rest = text;
    while (rest) {
      let at = -1, word = "";
      for (const f of found) {
        const i = rest.indexOf(f);
        if (i >= 0 && (at < 0 || i < at)) { at = i; word = f; }
      }
      if (at < 0) { parts.push(rest); break; }
      if (at > 0) parts.push(rest.slice(0, at));
      parts.push(h("mark", word));
      rest = rest.slice(at + word.length);
    }
    return parts;
  }

  function evidenceText(evidence) {
    const read = evidence.text;
    if (!read) return null;
    const state = read.state === "pending" ? "尚未识别" : read.state === "unavailable" ? (read.note || "OCR 未安装")
      : read.state === "failed" ? (read.note || "无法识别") : null;
    const found = (read.matches || []).map((m) => m.keyword);
    return h("div.ocr-text", { dataset: { evidence: evidence.evidence_id, finding: read.finding } },
      h("div.ocr-head", h("span.small", evidence.filename), textBadge(read.finding),
        found.length ? h("span.small.muted", `关键词：${found.join("、")}`) : null,
        read.finding === "no_campaign_text" && read.keywords.length ? h("span.small.muted", `应含：${read.keywords.join("、")}`) : null),
      state ? h("p.muted.small", state)
        : read.text ? h("p.ocr-lines", ...highlighted(read.text, read.matches)) : h("p.muted.small", "照片中没有识别到文字"));
  }

  function age(hours) {
    if (hours == null) return "";
    if (hours < 1) return "刚刚";
    if (hours < 48) return `${Math.floor(hours)} 小时前`;
    return `${Math.floor(hours / 24)} 天前`;
  }

  // ---------------------------------------------------------------- list

  function updateBulk() {
    const count = chosen.size;
    bulkCount.textContent = count ? `已选 ${count} 条` : "未选择";
    const pending = form.elements.state.value === "pending";
    $(".bulk-approve").disabled = !count || !pending;
    $(".bulk-return").disabled = !count || !pending;
    selectAll.checked = count > 0 && count === items.length;
    selectAll.indeterminate = count > 0 && count < items.length;
  }

  function renderList() {
    replace(list, items.length ? items.map((item, i) => {
      const box = h("input.pick", { type: "checkbox", "aria-label": `选择：${item.title}`, checked: chosen.has(item.submission_id) });
      box.addEventListener("change", () => {
        if (box.checked) chosen.add(item.submission_id);
        else chosen.delete(item.submission_id);
        updateBulk();
      });
      const row = h("li.queue-row", { dataset: { submission: item.submission_id, index: i }, tabindex: -1 },
        box,
        h("div.queue-row-main",
          h("div.queue-row-title", item.title),
          h("div.muted.small", `${unitName(item.unit_id)} · ${measureLabel(names, item.measure_code, item.kind)} · 第 ${item.version} 版 · ${age(item.age_hours)}`),
          h("div.flags", itemFlags(item), textBadge(item.text_finding),
            item.evidence && item.evidence.length ? null : badge("无佐证资料", "wait"))));
      row.addEventListener("click", (event) => { if (event.target !== box) select(i); });
      return row;
    }) : h("li.muted.empty", "没有符合条件的材料"));
    updateBulk();
  }

  async function load(keepId) {
    const wanted = keepId || (current && current.submission_id) || decodeURIComponent(location.hash.slice(1));
    try {
      items = await api("review", "/queue", { query: { ...filters(), limit: 200 } });
    } catch (error) {
      showError(error, list, "审核队列");
      return;
    }
    for (const id of Array.from(chosen)) if (!items.some((i) => i.submission_id === id)) chosen.delete(id);
    renderList();
    let next = items.findIndex((i) => i.submission_id === wanted);
    if (next < 0 && items.length) next = Math.min(Math.max(index, 0), items.length - 1);
    if (next >= 0) await select(next, false);
    else {
      index = -1;
      current = null;
      replace(panel, h("p.muted", items.length ? "请选择左侧的一条材料。" : "队列里没有待处理的材料。"));
    }
  }

  async function select(i, scroll = true) {
    if (i < 0 || i >= items.length) return;
    index = i;
    for (const row of $$(".queue-row", list)) {
      const on = Number(row.dataset.index) === i;
      row.classList.toggle("selected", on);
      if (on) row.setAttribute("aria-current", "true");
      else row.removeAttribute("aria-current");
      if (on && scroll) row.scrollIntoView({ block: "nearest" });
    }
    const id = items[i].submission_id;
    history.replaceState(null, "", `${location.pathname}${location.search}#${encodeURIComponent(id)}`);
    current = items[i];  // shortcuts act on the selected row at once; the full item follows
    try {
      const item = await api("review", `/submissions/${encodeURIComponent(id)}`);
      if (index !== i) return;  // another row was chosen meanwhile
      current = item;
    } catch (error) {
      showError(error, panel, "审核材料");
      return;
    }
    renderItem(current);
  }

  // ---------------------------------------------------------------- one item

  function renderItem(item) {
    const pending = item.state === "pending";
    const claimedByOther = item.claim_live && item.claimed_by && item.claimed_by !== me.id;
    const actions = pending ? h("div.actions.decision-actions",
      h("button.btn.btn-good.approve", { type: "button", "aria-keyshortcuts": "a", onclick: () => openDecision("approve", [item]) }, "通过", h("kbd", "a")),
      h("button.btn.btn-warn.return", { type: "button", "aria-keyshortcuts": "r", onclick: () => openDecision("return", [item]) }, "退回", h("kbd", "r")),
      h("button.btn.btn-bad.reject", { type: "button", "aria-keyshortcuts": "x", onclick: () => openDecision("reject", [item]) }, "驳回", h("kbd", "x")),
      item.claim_live && item.claimed_by === me.id
        ? h("button.btn.btn-quiet", { type: "button", onclick: () => claim(item, "release") }, "放弃领取")
        : h("button.btn.btn-quiet", { type: "button", onclick: () => claim(item, "claim") }, "领取")) : null;
    const decided = !pending && item.decided_at ? h("p.decision",
      stateBadge(item.state), ` ${item.decided_by || ""} 于 ${fmtTime(item.decided_at)}`,
      item.score != null ? `，得分 ${item.score}` : "", item.comment ? h("span.decision-comment", `：${item.comment}`) : null) : null;
    const evidence = item.evidence || [];
    const grid = h("div.evidence-grid", evidence.length
      ? evidence.map((e) => C.evidenceTile(e, evidenceFlags(item, e)))
      : h("p.muted", "尚未上传佐证资料"));
    const read = evidence.filter((e) => e.text);
    const texts = read.length ? h("details.ocr-box", { open: true }, h("summary", "照片文字（自动识别，仅供参考）"),
      read.map(evidenceText)) : null;
    const comments = h("div.comments");
    const timeline = h("details.timeline-box", h("summary", "时间线"), h("ol.timeline"));
    timeline.addEventListener("toggle", async () => {
      if (!timeline.open) return;
      try {
        const rows = await api("review", `/submissions/${encodeURIComponent(item.submission_id)}/timeline`);
        replace($(".timeline", timeline), C.timelineItems(rows));
      } catch (error) {
        showError(error, $(".timeline", timeline), "时间线");
      }
    });
    replace(panel,
      h("header.item-head", h("h2.item-title", item.title), stateBadge(item.state)),
      h("p.muted", h("a", { href: `${root}/units/${encodeURIComponent(item.unit_id)}` }, unitName(item.unit_id)),
        ` · ${measureLabel(names, item.measure_code, item.kind)} · 第 ${item.version} 版 · 报送于 ${fmtTime(item.submitted_at)}`),
      h("div.flags", itemFlags(item), textBadge(item.text_finding)),
      claimedByOther ? h("p.notice.notice-warn", `已被其他审核员领取，至 ${fmtTime(item.claim_expires_at)}`) : null,
      decided, actions, grid, texts, h("h3", "评论"), comments, timeline);
    C.commentThread(comments, item.submission_id, me);
  }

  async function claim(item, action) {
    try {
      await api("review", `/submissions/${encodeURIComponent(item.submission_id)}/${action}`, {
        method: "POST", json: action === "claim" ? { version: item.version } : undefined });
      toast(action === "claim" ? "已领取" : "已放弃领取");
      await select(index, false);
    } catch (error) {
      showError(error);
    }
  }

  // ---------------------------------------------------------------- decisions

  const MODES = {
    approve: { title: "通过", label: "意见（可选）", required: false, score: true, path: "approve", bulk: "/bulk/approve" },
    return: { title: "退回修改", label: "退回意见（必填）", required: true, score: false, path: "return", bulk: "/bulk/return" },
    reject: { title: "驳回", label: "驳回理由（必填）", required: true, score: false, path: "reject", bulk: null },
  };
  let decision = null;

  function openDecision(mode, targets) {
    if (!targets.length) return;
    const spec = MODES[mode];
    decision = { mode, targets };
    decisionForm.reset();
    formError(decisionForm, null);
    $(".decision-title", dialog).textContent = targets.length > 1 ? `批量${spec.title}（${targets.length} 条）` : spec.title;
    $(".decision-target", dialog).textContent = targets.length > 1
      ? targets.map((t) => t.title).join("、") : `${targets[0].title} · ${unitName(targets[0].unit_id)}`;
    $(".score-field", dialog).hidden = !spec.score;
    $(".comment-label", dialog).textContent = spec.label;
    decisionForm.elements.comment.required = spec.required;
    dialog.dataset.mode = mode;
    dialog.showModal();
    (spec.score ? decisionForm.elements.score : decisionForm.elements.comment).focus();
    if (spec.score) decisionForm.elements.score.select();
  }

  decisionForm.elements.comment.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      decisionForm.requestSubmit();
    }
  });
  $(".cancel", dialog).addEventListener("click", () => dialog.close());

  decisionForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!decision) return;
    const spec = MODES[decision.mode];
    const comment = decisionForm.elements.comment.value.trim();
    const score = decisionForm.elements.score.value === "" ? null : Number(decisionForm.elements.score.value);
    if (spec.required && !comment) {
      formError(decisionForm, new Error(`请填写${spec.label.replace(/（.*）/, "")}`));
      return;
    }
    if (spec.score && score != null && (Number.isNaN(score) || score < 0 || score > 100)) {
      formError(decisionForm, new Error("得分应在 0 到 100 之间"));
      return;
    }
    const button = $(".confirm", dialog);
    C.busy(button, true);
    try {
      const { targets } = decision;
      if (targets.length === 1) {
        const target = targets[0];
        const body = { version: target.version };
        if (decision.mode === "approve") {
          if (score != null) body.score = score;
          if (comment) body.comment = comment;
        } else if (decision.mode === "return") body.comment = comment;
        else body.reason = comment;
        await api("review", `/submissions/${encodeURIComponent(target.submission_id)}/${spec.path}`, { method: "POST", json: body });
        toast(`已${spec.title}：${target.title}`);
      } else {
        const body = { items: targets.map((t) => ({ submission_id: t.submission_id, version: t.version })) };
        if (decision.mode === "approve") {
          if (score != null) body.score = score;
          if (comment) body.comment = comment;
        } else body.comment = comment;
        const result = await api("review", spec.bulk, { method: "POST", json: body });
        toast(`批量${spec.title}：成功 ${result.succeeded} 条${result.failed ? `，失败 ${result.failed} 条` : ""}`, result.failed ? "wait" : "good");
        for (const failure of result.results.filter((r) => !r.ok)) {
          C.notice(`${failure.submission_id.slice(0, 8)}：${failure.message || failure.code}`, "warn");
        }
        chosen.clear();
      }
      C.busy(button, false);
      dialog.close();
      current = null;
      await load("");
    } catch (error) {
      C.busy(button, false);
      formError(decisionForm, error.missingRoute ? new Error("暂不可用：该操作的接口尚未开放") : error);
    }
  });

  function chosenItems() { return items.filter((i) => chosen.has(i.submission_id)); }

  selectAll.addEventListener("change", () => {
    if (selectAll.checked) items.forEach((i) => chosen.add(i.submission_id));
    else chosen.clear();
    renderList();
    if (index >= 0) select(index, false);
  });
  $(".bulk-approve").addEventListener("click", () => openDecision("approve", chosenItems()));
  $(".bulk-return").addEventListener("click", () => openDecision("return", chosenItems()));

  // ---------------------------------------------------------------- keyboard

  const pendingCurrent = () => (current && current.state === "pending" ? [current] : []);
  C.shortcuts({
    j: () => select(Math.min(index + 1, items.length - 1)),
    k: () => select(Math.max(index - 1, 0)),
    a: () => openDecision("approve", pendingCurrent()),
    r: () => openDecision("return", pendingCurrent()),
    x: () => openDecision("reject", pendingCurrent()),
    c: () => { const box = $(".comment-form textarea", panel); if (box) box.focus(); },
    "?": () => { const box = $(".shortcuts"); box.open = !box.open; },
  });

  await load();
});
