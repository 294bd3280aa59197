/* 宣传月佐证平台 · 网页控制台：登录与导航、接口调用、公用小工具。每个页面的脚本用 Console.page(name, init) 登记。 */
(function () {
  "use strict";

  const body = document.body;
  const ROOT = body.dataset.root || "";
  const API = JSON.parse(body.dataset.api || "{}");
  const HOMES = JSON.parse(body.dataset.homes || "{}");
  const TOKEN_KEY = "console.token";
  const ME_KEY = "console.me";
  const CAMPAIGN_KEY = "console.campaign";
  let TZ = "Asia/Shanghai";  // times are shown in the campaign's time zone once a campaign is loaded

  const LABELS = {
    role: { admin: "管理员", reviewer: "审核员", inspector: "检查员", unit: "单位联络员" },
    state: {
      draft: "草稿", submitted: "待审核", under_review: "审核中", pending: "待审核", approved: "已通过",
      returned: "已退回", rejected: "已驳回", withdrawn: "已撤回", missing: "未报送",
    },
    level: { city: "市", county: "县（区）", township: "乡镇（街道）", village: "村（社区）", member: "市直单位" },
    kind: { measure: "宣传措施", summary_report: "活动总结", good_practice: "经验做法" },
    evidenceKind: { photo: "照片", video: "视频", document: "文档" },
    flag: { outside_window: "超出宣传时间", duplicate: "重复照片", near_duplicate: "相似照片" },
    supervisionLevel: { blue: "蓝色", yellow: "黄色", red: "红色" },
    supervisionState: { open: "督办中", responded: "已反馈", closed: "已办结" },
    method: { phone: "电话", on_site: "实地", interview: "约谈" },
    liaison: { designated: "已按时明确", late: "逾期明确", missing: "未明确" },
  };
  const STATE_TONE = {
    approved: "good", submitted: "wait", under_review: "wait", pending: "wait", returned: "bad", rejected: "bad",
    missing: "bad", draft: "quiet", withdrawn: "quiet",
  };

  // ------------------------------------------------------------------ DOM

  /** h("div.card", {attrs}, ...children): build an element; strings become text, never HTML. */
  function h(tag, attrs, ...children) {
    if (attrs === null || typeof attrs !== "object" || attrs instanceof Node || Array.isArray(attrs)) {
      children.unshift(attrs);
      attrs = {};
    }
    const [name, ...classes] = tag.split(".");
    const node = document.createElement(name || "div");
    if (classes.length) node.className = classes.join(" ");
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = [node.className, value].filter(Boolean).join(" ");
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
      else if (value === true) node.setAttribute(key, "");
      else node.setAttribute(key, String(value));
    }
    return append(node, children);
  }

  function append(node, children) {
    for (const child of [children].flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function replace(node, ...children) {
    node.replaceChildren();
    return append(node, children);
  }

  const $ = (selector, scope) => (scope || document).querySelector(selector);
  const $$ = (selector, scope) => Array.from((scope || document).querySelectorAll(selector));

  function badge(text, tone) {
    return h("span.badge", { class: tone ? `tone-${tone}` : null }, text);
  }

  function stateBadge(state) {
    return h("span.badge.state", { class: `tone-${STATE_TONE[state] || "quiet"}`, dataset: { state } },
      LABELS.state[state] || state);
  }

  // ------------------------------------------------------------------ messages

  function notice(text, tone = "info", where) {
    const box = where || $(".notices");
    const node = h("div.notice", { class: `notice-${tone}`, role: tone === "error" ? "alert" : null }, text);
    if (box) box.append(node);
    return node;
  }

  function toast(text, tone = "good") {
    const box = $(".toasts");
    const node = h("div.toast", { class: `tone-${tone}` }, text);
    box.append(node);
    setTimeout(() => node.remove(), 5000);
    return node;
  }

  /** Show what went wrong; a route the platform does not serve yet shows 暂不可用. */
  function showError(error, where, what) {
    if (error instanceof ApiFailure && error.missingRoute) return unavailable(where, what);
    const text = error instanceof ApiFailure ? error.message : `出错了：${error && error.message ? error.message : error}`;
    if (where) return replace(where, h("p.notice.notice-error", { role: "alert" }, text));
    if (!(error instanceof ApiFailure)) console.error(error);
    return notice(text, "error");
  }

  function unavailable(where, what) {
    const node = h("p.notice.notice-warn.unavailable", `暂不可用：${what || "该功能"}的接口尚未开放，请稍后再试。`);
    if (where) replace(where, node);
    else ($(".notices") || body).append(node);
    return node;
  }

  function formError(form, error) {
    const box = $(".form-error", form);
    if (!box) return showError(error);
    if (!error) {
      box.hidden = true;
      box.textContent = "";
      return null;
    }
    box.textContent = error instanceof ApiFailure ? error.message : String(error.message || error);
    box.hidden = false;
    return box;
  }

  // ------------------------------------------------------------------ API

  class ApiFailure extends Error {
    constructor(status, data, url, message) {
      super(message || messageOf(status, data));
      this.status = status;
      this.data = data;
      this.url = url;
      this.code = data && typeof data === "object" ? data.code : undefined;
      this.requestId = data && typeof data === "object" ? data.request_id : undefined;
    }

    /** The platform has no such route (yet): the envelope's route_not_found, or 405. */
    get missingRoute() {
      return (this.status === 404 && this.code === "route_not_found") || this.status === 405;
    }
  }

  // Every service answers errors as RFC 9457 problem details with code, message (Chinese), message_en,
  // request_id and, for 422, errors (the fields to fix).
  function messageOf(status, data) {
    if (data && typeof data === "object" && Array.isArray(data.errors) && data.errors.length && status === 422
        && data.code === "invalid_request") {
      const fields = data.errors.map((e) => `${(e.loc || []).filter((p) => p !== "body" && p !== "query").join(".")} ${e.msg}`);
      return `输入有误：${fields.join("；")}`;
    }
    if (data && typeof data === "object" && typeof data.message === "string" && data.message) return data.message;
    if (status === 401) return "请先登录";
    if (status === 403) return "当前角色无权执行此操作";
    if (status === 404) return "未找到";
    if (status === 413) return "内容太大";
    if (status >= 500) return `服务暂时不可用（HTTP ${status}），请稍后重试`;
    return `请求失败（HTTP ${status}）`;
  }

  function urlOf(service, path, query) {
    let url = (API[service] || `/${service}`) + path;
    if (query) {
      const params = new URLSearchParams();
      for (const [key, value] of Object.entries(query)) {
        if (value !== null && value !== undefined && value !== "") params.append(key, value);
      }
      if (params.toString()) url += `?${params}`;
    }
    return url;
  }

  function authHeaders(extra) {
    const headers = Object.assign({}, extra || {});
    const token = getToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    return headers;
  }

  /** Call a service: api("intake", "/units", {query, method, json, body, raw}); JSON back, ApiFailure on errors. */
  async function api(service, path, options = {}) {
    const { method = "GET", json, query, raw = false } = options;
    let { body: payload } = options;
    const url = urlOf(service, path, query);
    const headers = authHeaders(options.headers);
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(json);
    }
    let response;
    try {
      response = await fetch(url, { method, headers, body: payload, cache: "no-store" });
    } catch (err) {
      throw new ApiFailure(0, null, url, "网络连接失败，请检查网络后重试");
    }
    if (response.status === 401 && headers.Authorization) {
      logout(true);
      throw new ApiFailure(401, null, url, "登录已过期，请重新登录");
    }
    if (!response.ok) {
      let data = null;
      try { data = await response.json(); } catch (err) { data = null; }
      throw new ApiFailure(response.status, data, url);
    }
    if (raw) return response;
    if (response.status === 204 || method === "HEAD") return null;
    const type = response.headers.get("content-type") || "";
    return type.includes("json") ? response.json() : response.text();
  }

  /** Download a file the API streams (with the token) and hand it to the browser under its name. */
  async function download(service, path, fallbackName) {
    const response = await api(service, path, { raw: true });
    const blob = await response.blob();
    const disposition = response.headers.get("content-disposition") || "";
    const match = /filename\*=UTF-8''([^;]+)/i.exec(disposition);
    const name = match ? decodeURIComponent(match[1]) : fallbackName;
    const link = h("a", { href: URL.createObjectURL(blob), download: name, hidden: true });
    body.append(link);
    link.click();
    setTimeout(() => { URL.revokeObjectURL(link.href); link.remove(); }, 10000);
  }

  // ------------------------------------------------------------------ session

  function getToken() { return sessionStorage.getItem(TOKEN_KEY); }

  function me() {
    try { return JSON.parse(sessionStorage.getItem(ME_KEY) || "null"); } catch (err) { return null; }
  }

  async function login(username, password) {
    const token = await api("intake", "/auth/login", { method: "POST", json: { username, password } });
    sessionStorage.setItem(TOKEN_KEY, token.access_token);
    const who = await api("intake", "/auth/me");
    sessionStorage.setItem(ME_KEY, JSON.stringify(who));
    return who;
  }

  function logout(expired) {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(ME_KEY);
    const next = encodeURIComponent(location.pathname + location.search + location.hash);
    location.replace(`${ROOT}/login${expired ? `?expired=1&next=${next}` : ""}`);
  }

  function homeOf(role) { return ROOT + (HOMES[role] || "/dashboard"); }

  function showNav(who) {
    for (const link of $$(".nav-link")) {
      if (!(link.dataset.roles || "").split(" ").includes(who.role)) link.remove();
    }
    const nav = $(".nav");
    const toggle = $(".menu-toggle");
    nav.hidden = false;
    toggle.hidden = false;
    toggle.addEventListener("click", () => {
      const open = nav.classList.toggle("open");
      toggle.setAttribute("aria-expanded", String(open));
    });
    const whoBox = $(".who");
    $(".who-name", whoBox).textContent = who.name;
    $(".who-role", whoBox).textContent = LABELS.role[who.role] || who.role;
    $(".logout", whoBox).addEventListener("click", () => logout(false));
    whoBox.hidden = false;
  }

  // ------------------------------------------------------------------ pages

  const inits = {};

  /** Register the init function of a page: it gets {me, params, root} once the user may see the page. */
  function page(name, init) { inits[name] = init; }

  async function start() {
    const name = body.dataset.page;
    const roles = (body.dataset.roles || "").split(" ").filter(Boolean);
    const who = me();
    if (roles.length && !who) {
      location.replace(`${ROOT}/login?next=${encodeURIComponent(location.pathname + location.search + location.hash)}`);
      return;
    }
    if (who) showNav(who);
    if (roles.length && !roles.includes(who.role)) {
      replace($("#main"), h("h1.page-title", "无权访问"),
        h("p.notice.notice-warn", `当前角色（${LABELS.role[who.role] || who.role}）不能使用此页面。`),
        h("p", h("a.btn", { href: homeOf(who.role) }, "回到我的首页")));
      return;
    }
    const params = {};
    for (const [key, value] of Object.entries(body.dataset)) {
      if (key.startsWith("param")) params[key.charAt(5).toLowerCase() + key.slice(6)] = value;
    }
    const init = inits[name];
    if (!init) return;
    try {
      await init({ me: who, params, root: ROOT, query: new URLSearchParams(location.search) });
    } catch (error) {
      showError(error);
    }
    body.dataset.ready = "1";
  }

  document.addEventListener("DOMContentLoaded", start);

  // ------------------------------------------------------------------ keyboard

  function typing(target) {
    return target && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
  }

  /** Single-key shortcuts, ignored while typing or while a dialog is open. */
  function shortcuts(map) {
    document.addEventListener("keydown", (event) => {
      if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
      if ($("dialog[open]")) return;
      const handler = map[event.key];
      if (!handler) return;
      event.preventDefault();
      handler(event);
    });
  }

  // ------------------------------------------------------------------ formatting

  function parts(iso, options) {
    if (!iso) return "";
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return String(iso);
    return new Intl.DateTimeFormat("zh-CN", Object.assign({ timeZone: TZ, hour12: false }, options)).format(date);
  }

  function fmtTime(iso) {
    return parts(iso, { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
  }

  function fmtDate(iso) {
    if (iso && /^\d{4}-\d{2}-\d{2}$/.test(iso)) return iso;
    return parts(iso, { year: "numeric", month: "2-digit", day: "2-digit" });
  }

  function fmtBytes(n) {
    if (n == null) return "";
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
    if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MB`;
    return `${(n / 1024 ** 3).toFixed(2)} GB`;
  }

  /** "还剩 2 天 03:04:05" or "已截止 3 天"; tone bad when past, wait within 3 days. */
  function countdown(iso, now = Date.now()) {
    const due = new Date(iso).getTime();
    let left = Math.round((due - now) / 1000);
    const past = left < 0;
    left = Math.abs(left);
    const days = Math.floor(left / 86400);
    const rest = left % 86400;
    const clock = [Math.floor(rest / 3600), Math.floor((rest % 3600) / 60), rest % 60]
      .map((n) => String(n).padStart(2, "0")).join(":");
    if (past) return { text: days > 0 ? `已截止 ${days} 天` : `已截止 ${clock}`, tone: "bad", past };
    return { text: `还剩 ${days > 0 ? `${days} 天 ` : ""}${clock}`, tone: left < 3 * 86400 ? "wait" : "good", past };
  }

  /** A list item per deadline with a ticking countdown. */
  function deadlineList(list, deadlines) {
    replace(list);
    if (!deadlines || !deadlines.length) {
      list.append(h("li.muted", "本活动没有设置截止时间"));
      return;
    }
    const sorted = deadlines.slice().sort((a, b) => String(a.due).localeCompare(String(b.due)));
    const timers = [];
    for (const deadline of sorted) {
      const clock = h("span.countdown.badge");
      timers.push([clock, deadline.due]);
      list.append(h("li.deadline", { dataset: { code: deadline.code } },
        h("strong", deadline.name), " ", h("span.muted", fmtTime(deadline.due)), " ", clock));
    }
    const tick = () => {
      for (const [clock, due] of timers) {
        const left = countdown(due);
        clock.textContent = left.text;
        clock.className = `countdown badge tone-${left.tone}`;
      }
    };
    tick();
    setInterval(tick, 1000);
  }

  // ------------------------------------------------------------------ campaign and units

  async function campaignFor(who) {
    const list = await api("intake", "/campaigns");
    if (!list.length) return null;
    let chosen = null;
    if (who && who.role === "unit" && who.unit_id) {
      try {
        const unit = await api("intake", `/units/${encodeURIComponent(who.unit_id)}`);
        chosen = list.find((c) => c.id === unit.campaign_id) || null;
      } catch (err) { chosen = null; }
    }
    if (!chosen) {
      const wanted = localStorage.getItem(CAMPAIGN_KEY);
      chosen = list.find((c) => c.id === wanted)
        || list.slice().sort((a, b) => String(b.publicity_start).localeCompare(String(a.publicity_start)))[0];
    }
    const full = await api("intake", `/campaigns/${encodeURIComponent(chosen.id)}`);
    full.all = list;
    if (full.timezone) TZ = full.timezone;
    return full;
  }

  /** A <select> of campaigns when there are several; choosing one reloads the page. */
  function campaignPicker(where, campaign) {
    if (!where || !campaign) return;
    if (campaign.all.length < 2) {
      replace(where, h("strong.campaign-name", campaign.name));
      return;
    }
    const select = h("select", { "aria-label": "活动" },
      campaign.all.map((c) => h("option", { value: c.id, selected: c.id === campaign.id }, c.name)));
    select.addEventListener("change", () => {
      localStorage.setItem(CAMPAIGN_KEY, select.value);
      location.reload();
    });
    replace(where, h("label", "活动", select));
  }

  function noCampaign(where) {
    const text = "尚未导入任何活动。管理员可执行 make load-campaign，或向 /intake/campaigns 提交活动定义。";
    return where ? replace(where, h("p.notice.notice-warn", text)) : notice(text, "warn");
  }

  /** Units the caller may see, by id. */
  async function unitsById(campaign) {
    const path = campaign ? `/campaigns/${encodeURIComponent(campaign.id)}/units` : "/units";
    const rows = await api("intake", path, { query: { limit: campaign ? 10000 : 1000 } });
    return new Map(rows.map((u) => [u.id, u]));
  }

  function measureNames(campaign) {
    const names = new Map();
    const definition = campaign && campaign.definition;
    for (const m of (definition && definition.measures) || []) names.set(m.code, m.name);
    return names;
  }

  function measureLabel(names, code, kind) {
    if (kind && kind !== "measure") return LABELS.kind[kind] || kind;
    return names.has(code) ? `${code} ${names.get(code)}` : code;
  }

  // ------------------------------------------------------------------ evidence

  const previews = new Map();

  /** A blob: URL of the evidence's thumbnail (photo) or poster frame (video), fetched with the token. */
  function previewUrl(evidenceId) {
    if (!previews.has(evidenceId)) {
      previews.set(evidenceId, api("evidence", `/evidence/${encodeURIComponent(evidenceId)}/preview`, { raw: true })
        .then((response) => response.blob()).then((blob) => URL.createObjectURL(blob))
        .catch((error) => { previews.delete(evidenceId); throw error; }));
    }
    return previews.get(evidenceId);
  }

  async function contentUrl(evidenceId, variant) {
    const response = await api("evidence", `/evidence/${encodeURIComponent(evidenceId)}/content`,
      { raw: true, query: variant ? { variant } : undefined });
    return URL.createObjectURL(await response.blob());
  }

  /**
   * Where a video can play from: a presigned store URL, or (folder store) the bytes fetched with the token.
   * variant=web: the H.264 copy the evidence worker made of a video browsers cannot play, once it is ready.
   */
  async function videoSource(evidence) {
    try {
      const signed = await api("evidence", `/evidence/${encodeURIComponent(evidence.evidence_id)}/download-url`,
        { method: "POST", query: { variant: "web" } });
      return signed.url;
    } catch (error) {
      if (!(error instanceof ApiFailure) || (error.status !== 501 && error.status !== 503)) throw error;
      return contentUrl(evidence.evidence_id, "web");
    }
  }

  function kindOf(evidence) {
    const type = evidence.media_type || "";
    if (evidence.category && LABELS.evidenceKind[evidence.category]) return evidence.category;
    if (type.startsWith("image/")) return "photo";
    if (type.startsWith("video/")) return "video";
    return "document";
  }

  function lightbox(src, caption) {
    const dialog = h("dialog.lightbox", h("figure", h("img", { src, alt: caption }), h("figcaption", caption)),
      h("button.btn.close", { type: "button" }, "关闭"));
    $(".close", dialog).addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => dialog.remove());
    dialog.addEventListener("click", (event) => { if (event.target === dialog) dialog.close(); });
    body.append(dialog);
    dialog.showModal();
  }

  /**
   * One evidence tile: thumbnail (click to enlarge), or a video player, or a document link; badges for flags.
   * evidence: {evidence_id, filename, media_type, size, captured_at?, outside_window?}; flags: [text, tone] pairs.
   */
  function evidenceTile(evidence, flags = []) {
    const kind = kindOf(evidence);
    const id = evidence.evidence_id || evidence.id;
    const item = { ...evidence, evidence_id: id };
    const visual = h("div.tile-visual", h("span.muted", LABELS.evidenceKind[kind] || "文件"));
    const tile = h("figure.tile", { dataset: { evidenceId: id, kind } }, visual,
      h("figcaption", h("span.filename", item.filename || id), " ", h("span.muted", fmtBytes(item.size)),
        item.captured_at ? h("span.muted.small", ` 拍摄于 ${item.captured_at}`) : null,
        h("div.flags", flags.map(([text, tone]) => badge(text, tone || "bad")))));
    if (kind === "photo") {
      previewUrl(id).then((src) => {
        const img = h("img.thumb", { src, alt: item.filename || "照片", loading: "lazy" });
        img.addEventListener("click", async () => {
          try { lightbox(await contentUrl(id), item.filename || ""); } catch (error) { showError(error); }
        });
        replace(visual, img);
      }).catch(() => replace(visual, h("span.muted", "暂无缩略图")));
    } else if (kind === "video") {
      const video = h("video.player", { controls: true, preload: "none", playsinline: true });
      previewUrl(id).then((src) => { video.poster = src; }).catch(() => null);
      const play = h("button.btn.play", { type: "button" }, "▶ 播放视频");
      play.addEventListener("click", async () => {
        play.disabled = true;
        play.textContent = "正在加载……";
        try {
          video.src = await videoSource(item);
          play.remove();
          await video.play().catch(() => null);
        } catch (error) {
          play.disabled = false;
          play.textContent = "▶ 播放视频";
          showError(error);
        }
      });
      replace(visual, video, play);
    } else {
      const link = h("button.btn.btn-quiet", { type: "button" }, "下载文档");
      link.addEventListener("click", () => download("evidence", `/evidence/${encodeURIComponent(id)}/content`, item.filename)
        .catch((error) => showError(error)));
      replace(visual, link);
    }
    return tile;
  }

  // ------------------------------------------------------------------ comments

  /** A submission's comment thread with a form to add one (when the role may post). */
  async function commentThread(where, submissionId, who) {
    const list = h("ol.comment-list");
    const form = h("form.comment-form.stack",
      h("label.field", "写评论", h("textarea", { name: "body", rows: 3, required: true, maxlength: 5000 })),
      h("p.form-error", { role: "alert", hidden: true }),
      h("div.actions", h("button.btn", { type: "submit" }, "发表评论")));
    const canPost = who && ["admin", "reviewer", "unit"].includes(who.role);
    replace(where, list, canPost ? form : null);
    const load = async () => {
      try {
        const rows = await api("review", `/submissions/${encodeURIComponent(submissionId)}/comments`);
        replace(list, rows.length ? rows.map((c) => h("li.comment",
          h("div.comment-head", h("strong", c.author), " ", badge(LABELS.role[c.author_role] || c.author_role, "quiet"),
            " ", h("span.muted.small", `${fmtTime(c.at)} · 第 ${c.version} 版`)),
          h("p.comment-body", c.body))) : h("li.muted", "还没有评论"));
      } catch (error) {
        if (error instanceof ApiFailure && error.missingRoute) unavailable(list, "评论");
        else if (error instanceof ApiFailure && error.status === 404) replace(list, h("li.muted", "审核服务尚未收到这份材料，稍后刷新即可评论"));
        else showError(error, list);
      }
    };
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const text = form.elements.body.value.trim();
      if (!text) return;
      formError(form, null);
      try {
        await api("review", `/submissions/${encodeURIComponent(submissionId)}/comments`, { method: "POST", json: { body: text } });
        form.reset();
        await load();
      } catch (error) {
        formError(form, error);
      }
    });
    await load();
    return { reload: load, form };
  }

  // ------------------------------------------------------------------ timeline

  const TIMELINE_KINDS = {
    "submission.submitted": "报送材料", "submission.resubmitted": "重新报送", "submission.approved": "审核通过",
    "submission.returned": "退回修改", "submission.rejected": "驳回", "submission.withdrawn": "撤回",
    "submission.claimed": "领取审核", "submission.released": "放弃领取", "submission.assigned": "分配审核员",
    "evidence.stored": "上传佐证资料", "comment.added": "评论", "inspection.recorded": "检查",
    "supervision.opened": "发起督办", "supervision.escalated": "督办升级", "supervision.responded": "反馈整改",
    "supervision.closed": "督办办结", "circular.published": "发布通报",
  };

  function timelineItems(rows) {
    if (!rows.length) return [h("li.muted", "暂无记录")];
    return rows.map((r) => {
      const detail = r.detail || {};
      const extra = detail.comment || detail.body || detail.reason || detail.filename || detail.title || "";
      return h("li.timeline-item", { dataset: { kind: r.kind } },
        h("span.muted.small", fmtTime(r.at)), " ", h("strong", TIMELINE_KINDS[r.kind] || r.kind), " ",
        h("span", `${r.actor}${r.actor_role ? `（${LABELS.role[r.actor_role] || r.actor_role}）` : ""}`),
        extra ? h("div.muted.small", String(extra)) : null);
    });
  }

  // ------------------------------------------------------------------ forms

  function formValues(form) {
    const values = {};
    for (const element of form.elements) {
      if (!element.name || element.disabled) continue;
      if (element.type === "checkbox") {
        if (element.checked) (values[element.name] = values[element.name] || []).push(element.value);
      } else {
        values[element.name] = element.value;
      }
    }
    return values;
  }

  function busy(button, flag, text) {
    if (!button) return;
    if (flag) {
      button.dataset.label = button.textContent;
      button.textContent = text || "处理中……";
      button.disabled = true;
    } else {
      button.textContent = button.dataset.label || button.textContent;
      button.disabled = false;
    }
  }

  function sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }

  window.Console = {
    ROOT, API, LABELS, h, append, replace, $, $$, badge, stateBadge, notice, toast, showError, unavailable, formError,
    ApiFailure, api, urlOf, authHeaders, download, getToken, me, login, logout, homeOf, page, shortcuts, fmtTime,
    fmtDate, fmtBytes, countdown, deadlineList, campaignFor, campaignPicker, noCampaign, unitsById, measureNames,
    measureLabel, previewUrl, evidenceTile, kindOf, commentThread, timelineItems, formValues, busy, sleep,
  };
})();
