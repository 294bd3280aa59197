/* 佐证资料上传：拖放多个文件，逐个文件显示进度；走 evidence 的可续传上传会话（upload-sessions）。
   分片失败或页面刷新后，再次选择同一文件即从服务器已接收的位置（received）继续。 */
(function () {
  "use strict";
  const { h, api, replace, fmtBytes, ApiFailure, sleep, urlOf, authHeaders } = window.Console;

  const DEFAULT_CHUNK = 8 * 1024 * 1024;
  const MAX_ATTEMPTS = 6;
  const RESUME_PREFIX = "console.upload:";

  function chunkBytes(session) {
    // A test (or a slow phone line) may ask for smaller chunks; the store's minimum always wins.
    const wanted = Number(localStorage.getItem("console.chunkBytes")) || DEFAULT_CHUNK;
    return Math.max(wanted, session.min_chunk_bytes || 1);
  }

  function resumeKey(submissionId, file) {
    return `${RESUME_PREFIX}${submissionId}:${file.name}:${file.size}:${file.lastModified}`;
  }

  /** PUT one chunk with XMLHttpRequest (fetch has no upload progress); resolves with the session. */
  function putChunk(sessionId, blob, offset, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("PUT", urlOf("evidence", `/upload-sessions/${encodeURIComponent(sessionId)}`, { offset }));
      const headers = authHeaders({ "Content-Type": "application/octet-stream" });
      for (const [key, value] of Object.entries(headers)) xhr.setRequestHeader(key, value);
      xhr.upload.addEventListener("progress", (event) => onProgress(event.loaded));
      xhr.addEventListener("load", () => {
        let data = null;
        try { data = JSON.parse(xhr.responseText); } catch (err) { data = null; }
        if (xhr.status >= 200 && xhr.status < 300) resolve(data);
        else reject(new ApiFailure(xhr.status, data, sessionId));
      });
      xhr.addEventListener("error", () => reject(new ApiFailure(0, null, sessionId, "网络中断")));
      xhr.addEventListener("abort", () => reject(new ApiFailure(0, null, sessionId, "上传被中断")));
      xhr.send(blob);
    });
  }

  async function openSession(submissionId, file, row, grant) {
    const key = resumeKey(submissionId, file);
    const known = localStorage.getItem(key);
    if (known) {
      try {
        const session = await api("evidence", `/upload-sessions/${encodeURIComponent(known)}`);
        if (session.state === "open" || session.state === "completed") {
          if (session.received > 0 && session.state === "open") row.note(`从第 ${fmtBytes(session.received)} 处继续上传`);
          return session;
        }
      } catch (error) {
        if (!(error instanceof ApiFailure) || error.status === 0 || error.status >= 500) throw error;
      }
      localStorage.removeItem(key);
    }
    // intake's upload grant lets evidence accept the upload before it has heard of a brand-new submission
    const session = await api("evidence", `/submissions/${encodeURIComponent(submissionId)}/upload-sessions`, {
      method: "POST", json: { mode: "chunked", filename: file.name, size: file.size },
      headers: grant ? { "X-Upload-Grant": grant } : undefined,
    });
    localStorage.setItem(key, session.id);
    return session;
  }

  /** Upload one file through a resumable session, reporting progress to row; resolves with the evidence. */
  async function uploadFile(submissionId, file, row, grant) {
    try {
      return await uploadThroughSession(submissionId, file, row, grant);
    } catch (error) {
      // 410: the session can no longer be continued (expired, or begun by an older server version): start anew once
      if (!(error instanceof ApiFailure) || error.status !== 410) throw error;
      localStorage.removeItem(resumeKey(submissionId, file));
      row.note("上传会话已失效，正在重新上传");
      return uploadThroughSession(submissionId, file, row, grant);
    }
  }

  async function uploadThroughSession(submissionId, file, row, grant) {
    const key = resumeKey(submissionId, file);
    let session = await openSession(submissionId, file, row, grant);
    if (session.state !== "completed") {
      const size = file.size;
      const step = chunkBytes(session);
      let offset = session.received;
      let failures = 0;
      row.progress(offset, size);
      while (offset < size) {
        const end = Math.min(offset + step, size);
        try {
          session = await putChunk(session.id, file.slice(offset, end), offset, (sent) => row.progress(offset + sent, size));
          offset = session.received;
          failures = 0;
          row.progress(offset, size);
        } catch (error) {
          if (error instanceof ApiFailure && error.status >= 400 && error.status < 500 && error.status !== 409
              && error.code !== "chunk_incomplete") {
            throw error;  // refused (type, size, …): retrying does not help
          }
          failures += 1;
          if (failures >= MAX_ATTEMPTS) throw error;
          row.note(`网络中断，${failures} 秒后从服务器已接收的位置续传（第 ${failures} 次重试）`);
          await sleep(1000 * failures);
          const current = await api("evidence", `/upload-sessions/${encodeURIComponent(session.id)}`);
          offset = current.received;
          row.progress(offset, size);
        }
      }
    }
    row.note("正在校验……");
    const evidence = await api("evidence", `/upload-sessions/${encodeURIComponent(session.id)}/complete`, { method: "POST", json: {} });
    localStorage.removeItem(key);
    return evidence;
  }

  function fileRow(file) {
    const bar = h("div.bar-fill");
    const percent = h("span.percent", "0%");
    const status = h("span.status.muted", "等待上传");
    const node = h("li.upload-row", { dataset: { state: "queued", file: file.name } },
      h("div.upload-head", h("span.filename", file.name), h("span.muted", fmtBytes(file.size)), percent),
      h("div.bar", { role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": 0, "aria-label": file.name }, bar),
      status);
    const progressbar = node.querySelector(".bar");
    return {
      node,
      progress(done, total) {
        const value = total ? Math.min(100, Math.floor((done / total) * 100)) : 100;
        bar.style.width = `${value}%`;
        percent.textContent = `${value}%`;
        progressbar.setAttribute("aria-valuenow", String(value));
      },
      note(text) { status.textContent = text; },
      state(value, text) {
        node.dataset.state = value;
        status.textContent = text;
        status.className = `status tone-text-${value}`;
      },
    };
  }

  /**
   * A drop zone with a hidden multi-file input and a list of per-file rows.
   * options.onUploaded(evidence) after each file; options.ready: a promise that resolves once uploads are accepted;
   * options.grant: intake's upload_grant for the submission (uploads are then accepted at once).
   */
  function mount(where, submissionId, options = {}) {
    const input = h("input.file-input", { type: "file", multiple: true, accept: "image/*,video/*,.pdf,.docx,.xlsx,.heic,.heif", "aria-label": "选择文件" });
    const zone = h("div.drop-zone", { tabindex: 0, role: "button", "aria-label": "拖放文件到此处，或点击选择文件" },
      h("strong", "把照片、视频或文档拖到这里"), h("span.muted", "或点击选择文件（可多选）"), input);
    const list = h("ul.upload-list");
    const status = h("p.upload-status.muted");
    replace(where, zone, status, list);
    let queue = Promise.resolve();
    let ready = options.ready || Promise.resolve();

    const start = (files) => {
      for (const file of files) {
        const row = fileRow(file);
        list.append(row.node);
        queue = queue.then(() => ready).then(async () => {
          row.state("uploading", "上传中……");
          try {
            const evidence = await uploadFile(submissionId, file, row, options.grant);
            row.progress(1, 1);
            row.state("done", "已上传");
            if (options.onUploaded) options.onUploaded(evidence);
          } catch (error) {
            row.state("failed", `上传失败：${error.message || error}`);
            const retry = h("button.btn.btn-quiet.retry", { type: "button" }, "重试");
            retry.addEventListener("click", () => { retry.remove(); start([file]); row.node.remove(); });
            row.node.append(retry);
          }
        });
      }
    };
    input.addEventListener("change", () => {
      start(Array.from(input.files || []));
      input.value = "";
    });
    zone.addEventListener("click", (event) => { if (event.target !== input) input.click(); });
    zone.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); input.click(); }
    });
    for (const type of ["dragenter", "dragover"]) {
      zone.addEventListener(type, (event) => { event.preventDefault(); zone.classList.add("dragging"); });
    }
    for (const type of ["dragleave", "drop"]) {
      zone.addEventListener(type, () => zone.classList.remove("dragging"));
    }
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      start(Array.from((event.dataTransfer && event.dataTransfer.files) || []));
    });
    return {
      zone, input, list, status,
      setReady(promise) { ready = promise; },
      idle() { return queue; },
    };
  }

  /** Wait until evidence_storage has heard of the submission (it learns of it from an event). */
  async function whenUploadable(submissionId, status, timeoutMs = 60000) {
    const until = Date.now() + timeoutMs;
    let first = true;
    for (;;) {
      try {
        await api("evidence", `/submissions/${encodeURIComponent(submissionId)}/evidence`);
        if (status) status.textContent = "";
        return;
      } catch (error) {
        if (!(error instanceof ApiFailure) || error.status !== 404 || Date.now() > until) throw error;
        if (first && status) status.textContent = "正在准备上传……";
        first = false;
        await sleep(400);
      }
    }
  }

  window.Uploader = { mount, uploadFile, whenUploadable, resumeKey };
})();
