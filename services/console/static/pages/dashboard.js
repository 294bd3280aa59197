/* 活动看板：覆盖矩阵热力图（单位 × 宣传措施），截止时间倒计时，各级进度，点击进入单位详情。
   各级进度与合计来自汇总接口（/coverage/rollup）；单位多时热力图一次只加载一个区（按区分片）。 */
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
  const districtFilter = $(".district-filter");
  const LARGE = 400; // more units than this: the heat map loads one district at a time
  let coverage = null;
  let rollup = null;

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
    const groups = new Map(rollup.levels.map((g) => [g.level, { units: g.units, ...g.colours }]));
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
    const sum = (part, key) => rollup.levels.reduce((n, g) => n + (g[part][key] || 0), 0);
    $(".totals").textContent = `共 ${rollup.units} 个单位；格子：绿 ${sum("colours", "green")}，黄 ${sum("colours", "yellow")}，红 ${sum("colours", "red")}。`
      + `联络员：已明确 ${sum("liaisons", "designated")}，逾期 ${sum("liaisons", "late")}，未明确 ${sum("liaisons", "missing")}。`;
    $(".as-of").textContent = `数据时间 ${fmtTime(rollup.as_of)}`;
  }

  /** Large campaigns: a district picker (with each district's share of green cells); the matrix shows the chosen one. */
  function renderDistricts() {
    const byDistrict = new URLSearchParams(location.search).get("by") === "district"; // also on request: ?by=district
    const large = (byDistrict || rollup.units > LARGE) && rollup.districts.length > 1;
    $(".district-pick").hidden = !large;
    if (!large) return null;
    const chosen = districtFilter.value;
    replace(districtFilter, rollup.districts.map((g) => {
      const cells = g.colours.green + g.colours.yellow + g.colours.red || 1;
      return h("option", { value: g.unit_id }, `${g.name || g.unit_id}（${g.units} 个单位，已通过 ${Math.round((g.colours.green / cells) * 100)}%）`);
    }));
    if (rollup.districts.some((g) => g.unit_id === chosen)) districtFilter.value = chosen;
    return districtFilter.value;
  }

  async function loadMatrix(district) {
    const path = `/campaigns/${encodeURIComponent(campaign.id)}/coverage`;
    coverage = await api("intake", path, district ? { query: { unit_id: district } } : {});
    renderMatrix();
  }

  async function load() {
    try {
      rollup = await api("intake", `/campaigns/${encodeURIComponent(campaign.id)}/coverage/rollup`);
      renderLevels();
      renderTotals();
      await loadMatrix(renderDistricts());
      document.body.dataset.loaded = String(Date.now());
    } catch (error) {
      showError(error, $(".heatmap-wrap"), "覆盖情况");
    }
  }

  levelFilter.addEventListener("change", renderMatrix);
  districtFilter.addEventListener("change", async () => {
    try {
      await loadMatrix(districtFilter.value);
      document.body.dataset.loaded = String(Date.now());
    } catch (error) {
      showError(error, $(".heatmap-wrap"), "覆盖情况");
    }
  });
  search.addEventListener("input", renderMatrix);
  $(".refresh").addEventListener("click", load);
  await load();
  setInterval(() => { if (!document.hidden) load(); }, 60000);
});
