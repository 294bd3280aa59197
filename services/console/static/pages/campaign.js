/* 活动方案：宣传时间、检查时间、截止时间、宣传措施与宣传重点，以及可下载的参考资料（邮件里的“活动方案”“参考资料”链接打开这里）。 */
Console.page("campaign", async ({ params }) => {
  const { $, h, api, replace, fmtDate, fmtBytes, deadlineList, download, showError } = Console;
  const ref = encodeURIComponent(params.campaignId);
  const campaign = await api("intake", `/campaigns/${ref}`);
  const definition = campaign.definition || {};
  document.title = `${campaign.name} · 宣传月佐证平台`;
  $(".page-title").textContent = campaign.name;
  const shift = definition.shift;
  replace($(".campaign-info"),
    shift ? h("p.notice.notice-info.shift", `本活动的全部日期由 ${shift.source} 整体平移 ${shift.days} 天。${shift.note || ""}`) : null,
    definition.description ? h("p.description", definition.description) : null,
    h("dl.facts",
      h("dt", "主办"), h("dd", campaign.organiser || "—"),
      h("dt", "宣传时间"), h("dd.publicity", `${fmtDate(campaign.publicity_start)} 至 ${fmtDate(campaign.publicity_end)}`),
      h("dt", "检查时间"), h("dd", campaign.inspection_start ? `${fmtDate(campaign.inspection_start)} 至 ${fmtDate(campaign.inspection_end)}` : "—"),
      h("dt", "宣传重点"), h("dd", (definition.topics || []).map((t) => t.name).join("、") || "—"),
      h("dt", "版本"), h("dd", `第 ${campaign.version} 版`)));
  deadlineList($(".deadline-list"), definition.deadlines || []);
  replace($(".measure-list"), (definition.measures || []).map((m) => h("li.measure", { dataset: { code: m.code } },
    h("strong", `${m.code} ${m.name}`), m.description ? h("p.muted.small", m.description) : null)));
  const list = $(".material-list");
  try {
    const rows = await api("intake", `/campaigns/${ref}/materials`);
    replace(list, rows.length ? rows.map((m) => {
      const get = m.uploaded ? h("button.btn.btn-quiet", { type: "button" }, "下载") : h("span.muted", "（尚未上传）");
      if (m.uploaded) {
        get.addEventListener("click", () => download("intake", `/campaigns/${ref}/materials/${encodeURIComponent(m.code)}/content`,
          m.filename || m.code).catch((error) => showError(error)));
      }
      return h("li.material", { dataset: { code: m.code } }, h("strong", m.title), " ",
        m.size ? h("span.muted", fmtBytes(m.size)) : null, " ", get, m.description ? h("p.muted.small", m.description) : null);
    }) : h("li.muted", "本活动没有参考资料"));
  } catch (error) {
    showError(error, list, "参考资料");
  }
  if (location.hash === "#materials") $("#materials").scrollIntoView();
});
