// podwire's dashboard: wires the filter box, time window, histogram, map and tables to the API
// and keeps the view in the URL.
import { h, $, fmtNum, fmtBytes, fmtTime, fmtDuration, kflAnd, kflString, copyText, download, isoTime } from './util.js';
import { getJson, apiFetch, queryPage, sql, ApiError } from './api.js';
import { PRESETS, LEVELS, parseUrl, toUrl, mapLevel } from './urlstate.js';
import { KflInput } from './kfl.js';
import { MapView, KIND_STYLE, failedTotal } from './map.js';
import { Timeline } from './timeline.js';
import { RowsTable, HealthView, CONN_COLUMNS, DNS_COLUMNS } from './tables.js';

const HIDE = {
  dns: '!(dst.namespace == "kube-system" and dst.port == 53)',
  node: '!(src.namespace == "" and src.node != "") and !(dst.namespace == "" and dst.node != "")',
};
const MAX_NODES = 300;
const EXPORT_LIMIT = 1000000;

let state = parseUrl(location.search);
let timelineData = null;
let dataRange = null; // the store's first and last connection time: from any timeline answer
let timelineKey = null;
let mapData = null;
let generation = 0;
let pending = 0;
let waiters = [];

const api = {
  state,
  renders: 0,
  map: null,
  ready: null,
  timings: [],
  /** Resolves once no map render and no table load is running. */
  idle() {
    return pending === 0 ? Promise.resolve() : new Promise((r) => waiters.push(r));
  },
};
window.podwire = api;

function busy(p) {
  pending++;
  return p.finally(() => {
    pending--;
    if (pending === 0) {
      const w = waiters;
      waiters = [];
      w.forEach((r) => r());
    }
  });
}

// ---- the pieces -------------------------------------------------------------------------------

const kfl = new KflInput($('#kfl-root'), (text) => applyFilter(text));
$('#apply').addEventListener('click', () => applyFilter(kfl.value));

const timeline = new Timeline($('#timeline'), (from, to) => update({ range: null, from, to }));

const mapView = new MapView($('#map'), {
  onSelect: (sel) => update({ sel }, { map: false }),
  onExpand: (ns) => expand(ns, true),
  onCollapse: (ns) => expand(ns, false),
});
api.cy = mapView.cy;
api.mapView = mapView;

const connTable = new RowsTable($('#tab-conns'), CONN_COLUMNS, { packets: true });
const dnsTable = new RowsTable($('#tab-dns'), DNS_COLUMNS);
const health = new HealthView($('#tab-health'));
api.tables = { conns: connTable, dns: dnsTable, health };

for (const [key, , label] of PRESETS) {
  $('#presets').append(h('button', { class: 'seg', dataset: { range: key }, onclick: () => update({ range: key, from: null, to: null }) }, label));
}
for (const level of LEVELS) {
  $('#levels').append(h('button', {
    class: 'seg',
    dataset: { level },
    onclick: () => update({ level, expand: level === 'namespace' ? [] : null }),
  }, level === 'namespace' ? 'namespaces' : level + 's'));
}
for (const k of ['dns', 'node']) {
  $(`#hide-${k}`).addEventListener('change', (e) => {
    const hide = state.hide.filter((x) => x !== k);
    if (e.target.checked) hide.push(k);
    update({ hide });
  });
}
for (const b of document.querySelectorAll('.tabs [data-tab]')) {
  b.addEventListener('click', () => update({ tab: b.dataset.tab }, { map: false }));
}
for (const b of document.querySelectorAll('#export [data-format]')) {
  b.addEventListener('click', () => exportRows(b.dataset.format, b));
}
$('#fit').addEventListener('click', () => mapView.fit());
$('#relayout').addEventListener('click', () => {
  mapView.positions.clear();
  if (mapData) busy(mapView.render(mapData).then(() => mapView.select(state.sel)));
});
$('#copy-sql').addEventListener('click', async (e) => {
  const ok = await copyText($('#sql').textContent);
  e.target.textContent = ok ? 'copied' : 'copy failed';
  setTimeout(() => { e.target.textContent = 'copy'; }, 1500);
});
window.addEventListener('popstate', () => {
  state = parseUrl(location.search);
  api.state = state;
  refresh();
});


// ---- state changes ----------------------------------------------------------------------------

function applyFilter(text) {
  update({ q: text.trim(), sel: null });
}

/** Applies a change to the state, records it in the history, and redraws what depends on it. */
function update(change, { map = true, push = true } = {}) {
  state = { ...state, ...change };
  api.state = state;
  if (push) history.pushState(null, '', toUrl(state));
  if (map) refresh();
  else {
    mapView.select(state.sel);
    showSelection();
    busy(loadTab());
    syncControls();
  }
}

function expand(ns, open) {
  if (!ns) return;
  let list = state.expand;
  if (open) {
    if (list == null) return; // every namespace is broken down already
    if (!list.includes(ns)) list = [...list, ns];
  } else {
    if (list == null) list = mapView.namespaces().filter((x) => x !== ns);
    else list = list.filter((x) => x !== ns);
  }
  update({ expand: list, sel: state.sel && state.sel.startsWith('n:ns:') ? state.sel : null });
}

/**
 * The API's filter parameters: the filter as typed with the dashboard's own clauses (noise
 * toggles, the selection, `clauses`), which are KFL1. In KFL1 they are ANDed into one query; in
 * KFL2 the typed filter goes alone and the clauses under `and`.
 */
function filterParams(...clauses) {
  const own = [...state.hide.map((k) => HIDE[k]), ...clauses];
  if (state.dialect === 'kfl2') return { query: state.q, dialect: 'kfl2', and: kflAnd(...own) || null };
  return { query: kflAnd(state.q, ...own) };
}

/** `f` with more KFL1 clauses. */
function withClauses(f, ...clauses) {
  if (f.dialect === 'kfl2') return { ...f, and: kflAnd(f.and || '', ...clauses) || null };
  return { ...f, query: kflAnd(f.query, ...clauses) };
}

/** The filter box's completion catalog for the dialect, fetched once each. */
const catalogs = {};
function loadCatalog(dialect) {
  catalogs[dialect] ||= getJson('/api/v1/fields', { dialect });
  catalogs[dialect].then((cat) => { if (state.dialect === dialect) kfl.setCatalog(cat); }).catch(() => {});
}

/** The window [from, to) in epoch ms: presets count back from the newest row in the store. */
function windowOf() {
  if (!state.range) return { from: state.from, to: state.to };
  const t = dataRange;
  if (!t) return { from: null, to: null };
  const end = t.to + 1;
  if (state.range === 'all') return { from: t.from, to: end };
  const dur = PRESETS.find(([k]) => k === state.range)[1];
  return { from: end - dur, to: end };
}

function syncControls() {
  if (kfl.value !== state.q && document.activeElement !== kfl.input) kfl.value = state.q;
  if ($('#dialect').value !== state.dialect) {
    $('#dialect').value = state.dialect;
  }
  kfl.setDialect(state.dialect);
  loadCatalog(state.dialect);
  for (const b of document.querySelectorAll('#presets [data-range]')) b.classList.toggle('on', b.dataset.range === state.range);
  for (const b of document.querySelectorAll('#levels [data-level]')) b.classList.toggle('on', b.dataset.level === state.level);
  $('#hide-dns').checked = state.hide.includes('dns');
  $('#hide-node').checked = state.hide.includes('node');
  for (const b of document.querySelectorAll('.tabs [data-tab]')) {
    b.classList.toggle('on', b.dataset.tab === state.tab);
    b.setAttribute('aria-selected', b.dataset.tab === state.tab);
  }
  for (const t of ['conns', 'dns', 'health', 'insights']) $(`#tab-${t}`).hidden = t !== state.tab;
  $('#export').style.visibility = state.tab === 'health' || state.tab === 'insights' ? 'hidden' : 'visible';
  const w = windowOf();
  $('#window-text').replaceChildren(w.from == null ? 'no data' : h('span', null,
    state.range ? '' : h('span', { class: 'badge custom' }, 'brushed'), ' ',
    `${fmtTime(w.from)} – ${fmtTime(w.to)} UTC`, h('span', { class: 'muted' }, ` (${fmtDuration(w.to - w.from)})`)));
}

// ---- drawing ----------------------------------------------------------------------------------

function refresh() {
  const gen = ++generation;
  const p = busy(draw(gen)).catch((e) => {
    if (gen === generation) status(e.message || String(e), true);
  });
  api.ready = p;
  return p;
}

function takeTimeline(t, query) {
  timelineData = t;
  timelineKey = query;
  if (t.data_to_ms != null) dataRange = { from: Number(t.data_from_ms), to: Number(t.data_to_ms) };
}

function status(text, bad) {
  const el = $('#map-status');
  el.textContent = text || '';
  el.classList.toggle('bad', !!bad);
  el.classList.toggle('show', !!text);
}

async function draw(gen) {
  let tFetch = 0;
  syncControls();
  kfl.clearError();
  const f = filterParams();
  const query = JSON.stringify(f);
  status('loading…');
  try {
    // The histogram and the map load side by side. The window needs the store's time range,
    // which every timeline answer carries (it does not depend on the filter); only the very
    // first load lacks it, and then `all` asks for everything and `1h` for the API's default
    // (the last hour of data).
    const needTimeline = timelineKey !== query || !timelineData;
    const tl = needTimeline ? getJson('/api/v1/timeline', { ...f, buckets: 120 }) : null;
    if (!dataRange && tl && state.range && !['all', '1h'].includes(state.range)) {
      takeTimeline(await tl, query);
      if (gen !== generation) return;
    }
    let mw = windowOf();
    if (!dataRange && state.range === 'all') mw = { from: 0, to: 4102444800000 };
    tFetch = performance.now();
    const mp = getJson('/api/v1/map', { ...f, from: isoTime(mw.from), to: isoTime(mw.to), ...mapLevel(state), max_nodes: MAX_NODES })
      .then((m) => {
        tFetch = performance.now() - tFetch;
        return m;
      });
    const [t, m] = await Promise.all([tl, mp]);
    if (gen !== generation) return;
    if (t) takeTimeline(t, query);
    const w = windowOf();
    timeline.set(timelineData, w.from == null ? null : w);
    syncControls();
    if (gen !== generation) return;
    mapData = m;
    api.map = m;
  } catch (e) {
    if (gen !== generation) return;
    if (e instanceof ApiError && e.detail && (e.detail.line != null || /^(LEX|PARSE|SEM)_/.test(e.cls))) {
      // The noise clauses are ANDed after the filter as typed, which is then wrapped in
      // parentheses: shift the position back by that one character.
      if (f.query !== state.q && state.q && e.detail.start != null) {
        const d = { ...e.detail, start: e.detail.start - 1, end: e.detail.end - 1 };
        if (d.line === 1) d.col -= 1;
        e.detail = d;
      }
      kfl.showError(e, state.q || f.query);
      status('the filter has an error', true);
    } else {
      status(e.message || String(e), true);
    }
    api.renders++;
    return;
  }
  status('');
  $('#sql').textContent = mapData.sql || '';
  const notice = $('#map-notice');
  if (mapData.folded) {
    const f = mapData.folded;
    notice.textContent = `Large map: ${fmtNum(f.nodes)} nodes and ${fmtNum(f.edges)} edges were folded into "other" nodes to stay under ${fmtNum(f.max_nodes)} nodes. Narrow the filter or window, or expand fewer namespaces.`;
    notice.classList.add('show');
  } else notice.classList.remove('show');
  if (!mapData.nodes.length) status('No connections match this filter in this window.');
  const tDraw = performance.now();
  await mapView.render(mapData);
  if (gen !== generation) return;
  const timing = { fetchMs: Math.round(tFetch), drawMs: Math.round(performance.now() - tDraw), ...mapView.timings, sinceStartMs: Math.round(performance.now()) };
  api.timings.push(timing);
  requestAnimationFrame(() => requestAnimationFrame(() => { timing.paintedMs = Math.round(performance.now()); }));
  if (state.sel && !mapView.item(state.sel)) {
    // The selection is gone from this view (filtered out or folded): keep it in the URL but say so.
  }
  mapView.select(state.sel);
  showSelection();
  api.renders++;
  await loadTab();
}

// ---- selection, tables ------------------------------------------------------------------------

function selectionClause() {
  const sel = state.sel;
  if (!sel) return { clause: '', label: '' };
  const it = mapView.item(sel);
  if (!it) return { clause: null, label: sel.slice(2) };
  if (sel.startsWith('e:')) {
    return { clause: it.kfl, label: `${nodeLabel(it.source)} → ${nodeLabel(it.target)}` };
  }
  if (it.match) return { clause: `(${it.match.src}) or (${it.match.dst})`, label: it.label || it.id };
  if (it.kind === 'namespace' && it.namespace) {
    const ns = kflString(it.namespace);
    return { clause: `src.namespace == ${ns} or dst.namespace == ${ns}`, label: it.label || it.namespace };
  }
  return { clause: null, label: it.label || it.id };
}

function nodeLabel(id) {
  const n = mapView.item('n:' + id);
  return n ? n.label || id : id;
}

/** The filter of a tab's rows: the filter, the selection, and the tab's table. */
function tabQuery(tab) {
  const { clause } = selectionClause();
  if (tab === 'conns') return filterParams(clause || '', '!dns');
  const nodeSel = state.sel && state.sel.startsWith('n:') ? clause || '' : '';
  return filterParams(nodeSel, 'dns');
}

async function countRows(f, w) {
  const window = w.from != null ? [`timestamp >= ${w.from}`, `timestamp < ${w.to}`] : [];
  const t = await getJson('/api/v1/translate', withClauses(f, ...window));
  const inner = String(t.sql).trim().replace(/;$/, '');
  const r = await sql(`SELECT count(*) AS n FROM (${inner}) AS t`, 1);
  return r.length ? Number(r[0].n) : null;
}

function loadTab() {
  const w = windowOf();
  const sel = selectionClause();
  if (state.tab === 'health') return health.show(w.from, w.to);
  if (state.tab === 'insights') return showInsights(w);
  const table = state.tab === 'conns' ? connTable : dnsTable;
  if (state.sel && sel.clause == null) {
    return table.show({ title: h('span', null, `“${sel.label}” has no clause of its own (a folded node or not on this map): narrow the filter to see its rows.`), fetch: async () => [] });
  }
  const query = tabQuery(state.tab);
  const what = state.tab === 'conns' ? 'Connections' : 'DNS transactions';
  const title = h('span', null, h('b', null, what), state.sel ? [' of ', h('span', { class: 'sel-name' }, sel.label)] : ' matching the filter', h('span', { class: 'muted' }, ' in the window'));
  return table.show({
    title,
    fetch: (offset, limit) => queryPage({ ...query, from: w.from, to: w.to, limit, offset }),
    count: () => countRows(query, w),
    empty: () => h('span', null,
      h('button', { class: 'small primary', id: 'why-not-button', title: 'reasons from the store’s own records (podwire why-not)', onclick: () => whyNothing(filterParams(sel.clause || ''), w) }, 'why nothing?'),
      h('div', { id: 'why-not' })),
  });
}

/** GET /api/v1/why-not for the filter in the window: each reason in one sentence, with a button
 * to try the filter it suggests (the term replaced in the filter when it is written there). */
async function whyNothing(f, w) {
  const box = $('#why-not');
  box.replaceChildren(h('p', { class: 'muted' }, 'reading the store’s records…'));
  try {
    const r = await getJson('/api/v1/why-not', { ...f, from: w.from != null ? isoTime(w.from) : null, to: w.to != null ? isoTime(w.to) : null });
    const kids = [h('h4', null, 'Why nothing')];
    if (!r.reasons.length) kids.push(h('p', { class: 'muted' }, 'No reason found in the store’s records.'));
    for (const x of r.reasons) {
      const alt = x.suggestion && x.suggestion.includes(' or ') ? `(${x.suggestion})` : x.suggestion;
      const kfl1 = state.dialect === 'kfl1';
      const next = x.suggestion && (kfl1 && x.term && state.q.includes(x.term) ? state.q.replace(x.term, alt) : x.suggestion);
      kids.push(h('div', { class: `verdict reason ${x.reason}` },
        h('span', { class: 'badge' }, x.reason.replaceAll('_', ' ')), ' ', x.explanation, ' ',
        next ? h('button', { class: 'small', title: next, onclick: () => update({ q: next, dialect: 'kfl1', sel: null }) }, `try ${x.suggestion}`) : []));
    }
    box.replaceChildren(...kids);
  } catch (e) {
    box.replaceChildren(h('p', { class: 'bad' }, `why-not failed: ${e.message}`));
  }
}

const INSIGHT_TITLES = {
  failing: 'Failing connections',
  dns_failing: 'Names that fail to resolve',
  new_external: 'New destinations outside the cluster',
  unnamed_external: 'Public addresses without a name',
  capture: 'Capture',
};

/** The Insights tab: GET /api/v1/insights for the window, section by section, each item with a
 * button to its rows. */
async function showInsights(w) {
  const box = $('#tab-insights');
  box.replaceChildren(h('p', { class: 'muted' }, 'reading the window…'));
  try {
    const r = await getJson('/api/v1/insights', { from: w.from != null ? isoTime(w.from) : null, to: w.to != null ? isoTime(w.to) : null });
    if (!r.items.length) {
      box.replaceChildren(h('p', { class: 'verdict ok' }, 'Nothing to report in the window.'));
      return;
    }
    const kids = [];
    let kind = null;
    for (const it of r.items) {
      if (it.kind !== kind) {
        kind = it.kind;
        kids.push(h('h4', { class: 'insight-kind' }, INSIGHT_TITLES[kind] || kind));
      }
      kids.push(h('div', { class: `insight ${it.kind}` }, it.explanation, ' ',
        it.kfl ? h('button', { class: 'small', title: it.kfl, onclick: () => update({ q: it.kfl, dialect: 'kfl1', sel: null, tab: it.kind === 'dns_failing' ? 'dns' : 'conns' }) }, 'rows') : null));
    }
    box.replaceChildren(...kids);
  } catch (e) {
    box.replaceChildren(h('p', { class: 'bad' }, `insights failed: ${e.message}`));
  }
}

function showSelection() {
  const el = $('#selection');
  const sel = state.sel;
  if (!sel) {
    el.replaceChildren(h('h4', null, 'Selection'), h('p', { class: 'muted' }, 'Click a node or an edge to list its connections below. Double-click a namespace to open it into workloads.'));
    return;
  }
  const it = mapView.item(sel);
  const { clause, label } = selectionClause();
  const kids = [h('h4', null, sel.startsWith('e:') ? 'Edge' : 'Node'), h('div', { class: 'sel-title' }, label)];
  if (!it) kids.push(h('p', { class: 'muted' }, 'Not on the map in this view.'));
  else if (sel.startsWith('e:')) {
    const f = failedTotal(it.failed);
    kids.push(h('dl', { class: 'kv' },
      h('dt', null, 'connections'), h('dd', null, fmtNum(it.connections)),
      h('dt', null, 'failed'), h('dd', { class: f ? 'bad' : '' }, f ? Object.entries(it.failed).map(([k, v]) => `${k} ${v}`).join(', ') : '0'),
      h('dt', null, 'bytes'), h('dd', null, `${fmtBytes(it.bytes_sent)} → / ${fmtBytes(it.bytes_received)} ←`),
      h('dt', null, 'ports'), h('dd', null, (it.top_ports || []).map((p) => `${p.port}/${p.protocol}`).join(', ') || '–')));
  } else {
    kids.push(h('dl', { class: 'kv' },
      h('dt', null, 'kind'), h('dd', null, it.box ? 'namespace (open)' : it.kind),
      it.namespace ? [h('dt', null, 'namespace'), h('dd', null, it.namespace)] : null,
      it.box ? null : [h('dt', null, 'connections'), h('dd', null, fmtNum(it.connections)), h('dt', null, 'bytes'), h('dd', null, fmtBytes(it.bytes))]));
  }
  const buttons = h('div', { class: 'buttons' });
  // The map's clauses are KFL1: added to a KFL1 filter, or in place of an empty KFL2 one.
  if (clause && (state.dialect === 'kfl1' || !state.q.trim())) {
    buttons.append(h('button', { class: 'small', title: clause, onclick: () => update({ q: kflAnd(state.q, clause), dialect: 'kfl1', sel: null }) }, 'add to filter'));
  }
  if (it && it.kind === 'namespace' && it.namespace) {
    if (it.box) buttons.append(h('button', { class: 'small', onclick: () => expand(it.namespace, false) }, 'close namespace'));
    else if (state.expand != null) buttons.append(h('button', { class: 'small', onclick: () => expand(it.namespace, true) }, 'open namespace'));
  }
  if (clause) {
    const failing = it && sel.startsWith('e:') && failedTotal(it.failed) > 0;
    buttons.append(h('button', { class: failing ? 'small primary' : 'small', id: 'why-button', title: 'verdicts with their evidence (podwire why)', onclick: () => explain(clause) }, 'why?'));
  }
  buttons.append(h('button', { class: 'small', onclick: () => update({ sel: null }, { map: false }) }, 'clear'));
  kids.push(buttons);
  if (clause) kids.push(h('code', { class: 'clause' }, clause));
  kids.push(h('div', { id: 'why' }));
  el.replaceChildren(...kids);
}

/** GET /api/v1/why for the selection in the window: the problems found, each in one sentence
 * with a button that filters to its rows; "nothing wrong" when all pairs are ok. */
async function explain(clause) {
  const box = $('#why');
  box.replaceChildren(h('p', { class: 'muted' }, 'reading the evidence…'));
  const w = windowOf();
  try {
    const r = await getJson('/api/v1/why', { ...filterParams(clause), from: w.from != null ? isoTime(w.from) : null, to: w.to != null ? isoTime(w.to) : null });
    const problems = r.verdicts.filter((v) => v.verdict !== 'ok');
    const kids = [h('h4', null, 'Why')];
    if (!problems.length) {
      kids.push(h('p', { class: 'verdict ok' }, `Nothing wrong found in ${fmtNum(r.connections)} connections and ${fmtNum(r.dns_lookups)} DNS lookups.`));
    }
    for (const v of problems) {
      kids.push(h('div', { class: `verdict ${v.verdict}` },
        h('span', { class: 'badge' }, v.verdict.replace('_', ' ')), ' ', v.explanation, ' ',
        h('button', { class: 'small', title: v.kfl, onclick: () => update({ q: v.kfl, dialect: 'kfl1', sel: null }) }, 'rows')));
    }
    box.replaceChildren(...kids);
  } catch (e) {
    box.replaceChildren(h('p', { class: 'bad' }, `why failed: ${e.message}`));
  }
}

const SHAPES = {
  'round-rectangle': '<rect x="1.5" y="3" width="15" height="10" rx="3"/>',
  ellipse: '<circle cx="9" cy="8" r="6"/>',
  diamond: '<polygon points="9,1.5 15.5,8 9,14.5 2.5,8"/>',
  rectangle: '<rect x="2" y="3" width="14" height="10"/>',
  hexagon: '<polygon points="5,2 13,2 16.5,8 13,14 5,14 1.5,8"/>',
  triangle: '<polygon points="9,1.5 16,14 2,14"/>',
  octagon: '<polygon points="6,1.5 12,1.5 16,5.5 16,10.5 12,14.5 6,14.5 2,10.5 2,5.5"/>',
};

function swatch(k) {
  const el = h('span', { class: 'swatch-svg' });
  el.innerHTML = `<svg width="18" height="16" viewBox="0 0 18 16" fill="${k.fill}" stroke="${k.border}" stroke-width="1.5"${k.shape === 'octagon' ? ' stroke-dasharray="2.5 1.5"' : ''}>${SHAPES[k.shape]}</svg>`;
  return el;
}

function drawLegend() {
  const items = Object.entries(KIND_STYLE).map(([, k]) => h('li', null, swatch(k), k.label));
  $('#legend').replaceChildren(h('h4', null, 'Legend'), h('ul', { class: 'legend-list' },
    h('li', null, h('span', { class: 'swatch box' }), 'namespace (open)'),
    items),
  h('ul', { class: 'legend-list one' },
    h('li', null, h('span', { class: 'line' }), 'connections: initiator → responder, width = bytes (log)'),
    h('li', null, h('span', { class: 'line failed' }), 'some failed: refused, reset, no answer… (count)')));
}

// ---- export -----------------------------------------------------------------------------------

async function exportRows(format, button) {
  const w = windowOf();
  const body = { ...tabQuery(state.tab), limit: EXPORT_LIMIT, format };
  if (w.from != null) Object.assign(body, { from: isoTime(w.from), to: isoTime(w.to) });
  const old = button.textContent;
  button.disabled = true;
  button.textContent = '…';
  try {
    const res = await apiFetch('/api/v1/query', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    const blob = await res.blob();
    const ext = { csv: 'csv', ndjson: 'jsonl', parquet: 'parquet' }[format];
    download(blob, `podwire-${state.tab}-${new Date(w.from ?? Date.now()).toISOString().replace(/[:.]/g, '-')}.${ext}`);
  } catch (e) {
    alert(`Export failed: ${e.message}`);
  } finally {
    button.disabled = false;
    button.textContent = old;
  }
}

// ---- start ------------------------------------------------------------------------------------

drawLegend();
history.replaceState(null, '', toUrl(state));
$('#dialect').addEventListener('change', (e) => update({ dialect: e.target.value, sel: null }));
refresh();
