/* 活动看板：覆盖矩阵热力图（单位 × 宣传措施），截止时间倒计时，各级进度，点击进入单位详情。 */
Console.page("dashboard", async ({ me, root }) => {
  const { $, h, api, replace, LABELS, campaignFor, campaignPicker, noCampaign, deadlineList, fmtTime, showError } = Console;
  const SYMBOL = { approved: "✓", submitted: "●", returned: "↺", missing: "✗" };
  const campaign = await campaignFor(me);
  if (!campaign) {
    noCampaign();
    return;
  }
  campaignPicker($(".campaign-picker"), campaign);
  deadlineList($(".deadline-list"), (campaign.definition && campaign.definition.deadlines) || []);

  const levelFilter = $(".level-filter");
  const search = $(".unit-search");
  let coverage = null;

  function cell(unit, code, data, label) {
    return h("td.cell", {
      class: `cell-${data.colour}`, dataset: { unit: unit.code, measure: code, state: data.state, colour: data.colour },
      title: `${unit.name} · ${label}：${LABELS.state[data.state] || data.state}（${data.count} 份）`,
    }, h("span", { "aria-hidden": "true" }, SYMBOL[data.state] || "·"),
    h("span.visually-hidden", LABELS.state[data.state] || data.state));
  }

  const LEVEL_ORDER = ["city", "county", "member", "township", "village"];
  const rank = (level) => (LEVEL_ORDER.includes(level) ? LEVEL_ORDER.indexOf(level) : LEVEL_ORDER.length);

  /** Parents before their children; siblings by level, then code. Sets each unit's depth in the shown tree. */
  function treeOrder(units) {
    const byId = new Map(units.map((u) => [u.unit_id, u]));
    const children = new Map();
    const roots = [];
    for (const unit of units) {
      if (unit.parent_id && byId.has(unit.parent_id)) {
        if (!children.has(unit.parent_id)) children.set(unit.parent_id, []);
        children.get(unit.parent_id).push(unit);
      } else {
        roots.push(unit);
      }
    }
    const order = (a, b) => rank(a.level) - rank(b.level) || a.code.localeCompare(b.code);
    const out = [];
    const walk = (list, level) => {
      for (const unit of list.sort(order)) {
        unit.depth = level;
        out.push(unit);
        walk(children.get(unit.unit_id) || [], level + 1);
      }
    };
    walk(roots, 0);
    return out;
  }

  function renderMatrix() {
    const measures = coverage.measures;
    const thead = $(".heatmap thead");
    const tbody = $(".heatmap tbody");
    replace(thead, h("tr", h("th.unit-col", { scope: "col" }, "单位"),
      measures.map((m) => h("th", { scope: "col", title: m.name, dataset: { measure: m.code } }, h("span.code", m.code), h("span.mname", m.name))),
      h("th", { scope: "col" }, "总结"), h("th", { scope: "col" }, "联络员")));
    const level = levelFilter.value;
    const needle = search.value.trim().toLowerCase();
    const rows = treeOrder(coverage.units).filter((u) => (!level || u.level === level)
      && (!needle || u.name.toLowerCase().includes(needle) || u.code.toLowerCase().includes(needle)));
    replace(tbody, rows.map((unit) => {
      const link = h("a", { href: `${root}/units/${encodeURIComponent(unit.unit_id)}` }, unit.name);
      const head = h("th.unit-col", { scope: "row", dataset: { depth: Math.min(unit.depth, 3) } }, link,
        h("span.muted.small", ` ${LABELS.level[unit.level] || unit.level}`));
      const row = h("tr", { dataset: { unit: unit.code, unitId: unit.unit_id } }, head,
        measures.map((m) => cell(unit, m.code, unit.cells[m.code], m.name)),
        cell(unit, "summary", unit.summary_report, "活动总结"),
        h("td.cell", { class: `cell-${unit.liaison.colour}`, dataset: { unit: unit.code, measure: "liaison", colour: unit.liaison.colour },
          title: `联络员：${LABELS.liaison[unit.liaison.status] || unit.liaison.status}` }, unit.liaison.name || "—"));
      row.addEventListener("click", (event) => {
        if (event.target.closest("a")) return;
        location.href = link.href;
      });
      return row;
    }));
    if (!rows.length) tbody.append(h("tr", h("td.muted", { colspan: measures.length + 3 }, "没有符合条件的单位")));
  }

  function renderLevels() {
    const groups = new Map();
    for (const unit of coverage.units) {
      const group = groups.get(unit.level) || { units: 0, green: 0, yellow: 0, red: 0 };
      group.units += 1;
      for (const data of Object.values(unit.cells)) group[data.colour] += 1;
      groups.set(unit.level, group);
    }
    const levels = Array.from(groups.keys()).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
    replace($(".level-progress"), levels.length ? levels.map((level) => {
      const g = groups.get(level);
      const total = g.green + g.yellow + g.red || 1;
      const pct = (n) => `${Math.round((n / total) * 100)}%`;
      const bar = h("div.stacked", { role: "img", "aria-label": `已通过 ${pct(g.green)}，待审核或未临近 ${pct(g.yellow)}，缺报 ${pct(g.red)}` },
        ...["green", "yellow", "red"].map((colour) => {
          const part = h("span", { class: `seg cell-${colour}` });
          part.style.width = pct(g[colour]);
          return part;
        }));
      return h("div.level-row", { dataset: { level } },
        h("div.level-head", h("strong", LABELS.level[level] || level), h("span.muted", ` ${g.units} 个单位 · 已通过 ${pct(g.green)}`)), bar);
    }) : h("p.muted", "暂无单位"));
    const options = [h("option", { value: "" }, "全部"), ...levels.map((level) => h("option", { value: level }, LABELS.level[level] || level))];
    const chosen = levelFilter.value;
    replace(levelFilter, options);
    levelFilter.value = chosen;
  }

  function renderTotals() {
    const t = coverage.totals;
    $(".totals").textContent = `共 ${t.units} 个单位；格子：绿 ${t.colours.green}，黄 ${t.colours.yellow}，红 ${t.colours.red}。`
      + `联络员：已明确 ${t.liaisons.designated || 0}，逾期 ${t.liaisons.late || 0}，未明确 ${t.liaisons.missing || 0}。`;
    $(".as-of").textContent = `数据时间 ${fmtTime(coverage.as_of)}`;
  }

  async function load() {
    try {
      coverage = await api("intake", `/campaigns/${encodeURIComponent(campaign.id)}/coverage`);
      renderLevels();
      renderMatrix();
      renderTotals();
      document.body.dataset.loaded = String(Date.now());
    } catch (error) {
      showError(error, $(".heatmap-wrap"), "覆盖情况");
    }
  }

  levelFilter.addEventListener("change", renderMatrix);
  search.addEventListener("input", renderMatrix);
  $(".refresh").addEventListener("click", load);
  await load();
  setInterval(() => { if (!document.hidden) load(); }, 60000);
});
