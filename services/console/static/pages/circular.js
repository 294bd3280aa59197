/* 通报：标题、期间、截至时间、发布状态，下载 Word（单位）或 Word/Excel（工作人员）。 */
Console.page("circular", async ({ me, params }) => {
  const { $, h, api, replace, fmtTime, badge, download, showError } = Console;
  const id = encodeURIComponent(params.circularId);
  const circular = await api("review", `/circulars/${id}`);
  document.title = `${circular.title} · 宣传月佐证平台`;
  $(".page-title").textContent = circular.title;
  const kinds = me.role === "unit" ? [["docx", "下载 Word 通报"]] : [["docx", "下载 Word 通报"], ["xlsx", "下载 Excel 明细"]];
  const buttons = kinds.map(([kind, label]) => {
    const button = h("button.btn", { type: "button", dataset: { file: kind } }, label);
    button.addEventListener("click", () => download("review", `/circulars/${id}/files/${kind}`, `${circular.title}.${kind}`)
      .catch((error) => showError(error)));
    return button;
  });
  replace($(".circular-info"),
    h("p.state-line", badge(circular.state === "published" ? "已发布" : "草稿", circular.state === "published" ? "good" : "wait"),
      ` ${circular.period} · 第 ${circular.revision} 版`),
    h("dl.facts",
      h("dt", "统计截至"), h("dd", fmtTime(circular.as_of)),
      h("dt", "发布时间"), h("dd", circular.published_at ? fmtTime(circular.published_at) : "—"),
      h("dt", "快照 SHA-256"), h("dd.mono.small", circular.snapshot_sha256)),
    h("div.actions", buttons));
});
