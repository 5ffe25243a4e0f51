// The connectivity map: cytoscape with compound nodes (namespace boxes) laid out by fcose.
// Positions of nodes that stay are kept between renders, so the picture does not jump when the
// filter, window or expansion changes.
import cytoscape from 'cytoscape';
import fcose from 'cytoscape-fcose';
import { h, fmtBytes, fmtNum, fmtMs, fmtTime } from './util.js';

cytoscape.use(fcose);

export const KIND_STYLE = {
  namespace: { shape: 'round-rectangle', fill: '#e3ecfd', border: '#3b6fd8', label: 'namespace (closed)' },
  workload: { shape: 'ellipse', fill: '#dbe6fb', border: '#3b6fd8', label: 'workload' },
  pod: { shape: 'ellipse', fill: '#d8f1ec', border: '#23877b', label: 'pod' },
  service: { shape: 'diamond', fill: '#ece3fb', border: '#7b53c9', label: 'service' },
  external: { shape: 'rectangle', fill: '#fde4e2', border: '#d0312d', label: 'external' },
  node: { shape: 'hexagon', fill: '#e7ebee', border: '#4f626d', label: 'node / host' },
  unknown: { shape: 'triangle', fill: '#fff2cc', border: '#b7860b', label: 'unknown IP' },
  other: { shape: 'octagon', fill: '#f1f3f4', border: '#80868b', label: 'folded (other)' },
};

function lcg(seed) {
  let x = seed >>> 0;
  return () => (x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}
const jitter = lcg(7);

/** Runs `f` (a synchronous layout) with Math.random seeded. */
function withSeededRandom(f) {
  const saved = Math.random;
  Math.random = lcg(20261202);
  try {
    f();
  } finally {
    Math.random = saved;
  }
}

/** Above this many nodes the map is laid out namespace by namespace (groupedLayout). */
const BIG = 200;

export function failedTotal(failed) {
  if (!failed) return 0;
  return Object.values(failed).reduce((a, b) => a + Number(b || 0), 0);
}

function edgeWidth(bytes) {
  const l = Math.log10(Number(bytes || 0) + 1);
  return Math.max(1, Math.min(10, 1 + (l - 2) * 1.1));
}

function nodeSize(kind, connections) {
  const base = kind === 'pod' ? 26 : kind === 'external' || kind === 'unknown' ? 30 : 34;
  return base + Math.min(26, Math.log10(Number(connections || 0) + 1) * 7);
}

function styles() {
  const s = [
    {
      selector: 'node',
      style: {
        label: 'data(label)',
        'font-size': 11,
        'font-family': 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
        color: '#1f2933',
        'text-valign': 'bottom',
        'text-margin-y': 4,
        'min-zoomed-font-size': 7,
        width: 'data(size)',
        height: 'data(size)',
        'border-width': 1.5,
      },
    },
  ];
  for (const [kind, k] of Object.entries(KIND_STYLE)) {
    s.push({ selector: `node[kind = "${kind}"]`, style: { shape: k.shape, 'background-color': k.fill, 'border-color': k.border } });
  }
  s.push(
    { selector: 'node[kind = "external"]', style: { color: '#a3231f', 'border-width': 2, height: 'data(hsize)' } },
    { selector: 'node[kind = "namespace"]', style: { 'text-valign': 'center', 'text-margin-y': 0, 'font-weight': 600, width: 'data(wsize)', height: 'data(hsize)', 'text-max-width': 'data(wsize)' } },
    { selector: 'node[kind = "other"]', style: { 'border-style': 'dashed', color: '#5f6368' } },
    {
      selector: ':parent',
      style: {
        shape: 'round-rectangle',
        'background-color': '#f4f7fc',
        'background-opacity': 1,
        'border-color': '#8da6cf',
        'border-style': 'dashed',
        'border-width': 1.5,
        'text-valign': 'top',
        'text-halign': 'center',
        'text-margin-y': -4,
        'font-weight': 700,
        'font-size': 12,
        color: '#2c4a7a',
        padding: 14,
        'text-max-width': 400,
      },
    },
    {
      selector: 'edge',
      style: {
        width: 'data(width)',
        'line-color': '#8c9bb0',
        'target-arrow-color': '#8c9bb0',
        'target-arrow-shape': 'triangle',
        'arrow-scale': 0.8,
        'curve-style': 'bezier',
        opacity: 0.85,
        'font-size': 10,
        'min-zoomed-font-size': 7,
      },
    },
    {
      selector: 'edge[failedN > 0]',
      style: {
        'line-color': '#d0312d',
        'target-arrow-color': '#d0312d',
        'line-style': 'dashed',
        'line-dash-pattern': [6, 3],
        label: 'data(failLabel)',
        color: '#a3231f',
        'font-weight': 600,
        'text-background-color': '#ffffff',
        'text-background-opacity': 0.9,
        'text-background-padding': 2,
        'text-rotation': 'autorotate',
      },
    },
    {
      selector: 'node.flat-box',
      style: {
        shape: 'round-rectangle',
        width: 'data(bw)',
        height: 'data(bh)',
        'background-color': '#f4f7fc',
        'border-color': '#8da6cf',
        'border-style': 'dashed',
        'text-valign': 'top',
        'text-margin-y': -4,
        'font-weight': 700,
        'font-size': 12,
        color: '#2c4a7a',
        'z-compound-depth': 'bottom',
      },
    },
    { selector: 'edge.big', style: { 'curve-style': 'straight', 'arrow-scale': 0.6 } },
    { selector: 'node:selected', style: { 'border-width': 4, 'border-color': '#f29900' } },
    { selector: 'edge:selected', style: { 'line-color': '#f29900', 'target-arrow-color': '#f29900', opacity: 1, 'z-index': 10 } },
    { selector: '.faded', style: { opacity: 0.18 } },
    { selector: 'edge.hl', style: { 'line-color': '#3b6fd8', 'target-arrow-color': '#3b6fd8', opacity: 1, 'z-index': 9 } },
    { selector: 'edge.hl[failedN > 0]', style: { 'line-color': '#d0312d', 'target-arrow-color': '#d0312d' } },
    { selector: 'node.hl', style: { 'border-width': 3, 'border-color': '#3b6fd8' } },
  );
  return s;
}

export class MapView {
  constructor(container, handlers) {
    this.container = container;
    this.handlers = handlers;
    this.positions = new Map(); // node id → {x, y}, kept across renders
    this.data = null;
    this.tooltip = h('div', { class: 'tooltip', role: 'tooltip' });
    container.parentElement.append(this.tooltip);
    this.cy = cytoscape({
      container,
      style: styles(),
      minZoom: 0.05,
      maxZoom: 4,
      boxSelectionEnabled: false,
      selectionType: 'single',
    });
    const cy = this.cy;
    cy.on('tap', (evt) => {
      if (evt.target === cy) handlers.onSelect(null);
    });
    cy.on('tap', 'node, edge', (evt) => {
      const el = evt.target;
      this.hideTip();
      handlers.onSelect((el.isNode() ? 'n:' : 'e:') + el.id());
    });
    cy.on('dbltap', 'node', (evt) => {
      const n = evt.target;
      if (n.data('kind') !== 'namespace') return;
      if (n.data('box')) handlers.onCollapse(n.data('namespace') || n.data('label'));
      else handlers.onExpand(n.data('namespace') || n.data('label'));
    });
    cy.on('mouseover', 'node, edge', (evt) => this.showTip(evt));
    cy.on('mousemove', 'node, edge', (evt) => this.moveTip(evt));
    cy.on('mouseout', 'node, edge', () => this.hideTip());
    cy.on('viewport', () => this.hideTip());
  }

  /** Draws a /api/v1/map answer; resolves when the layout is done. */
  render(map) {
    this.data = map;
    const cy = this.cy;
    this.hideTip();
    // Remember where everything is before replacing it.
    cy.nodes().forEach((n) => {
      if (!n.isParent() && !n.hasClass('flat-box')) this.positions.set(n.id(), { ...n.position() });
    });
    const nodeIds = new Set(map.nodes.map((n) => n.id));
    const big = map.edges.length > 800;
    // Compound nodes make cytoscape re-style every node's box, children and edges on each style
    // change (seconds on a big map): a big map draws its namespace boxes as plain nodes under
    // their members instead (same look; dragging a box does not move its members).
    const flat = map.nodes.filter((n) => !n.box).length > BIG;
    this.flat = flat;
    const els = [];
    for (const n of map.nodes) {
      const size = nodeSize(n.kind, n.connections);
      const label = n.label || n.id;
      const data = {
        ...n,
        id: n.id,
        label,
        parent: !flat && n.parent && nodeIds.has(n.parent) ? n.parent : undefined,
        pid: n.parent && nodeIds.has(n.parent) ? n.parent : undefined,
        bw: 10,
        bh: 10,
        size,
        hsize: n.kind === 'namespace' ? 30 + Math.min(20, Math.log10(Number(n.connections || 0) + 1) * 6) : n.kind === 'external' ? size * 0.7 : size,
        wsize: Math.max(60, Math.min(180, label.length * 7 + 20)),
      };
      delete data.match;
      els.push({ group: 'nodes', data, classes: n.box ? (flat ? 'box flat-box' : 'box') : '' });
    }
    for (const e of map.edges) {
      if (!nodeIds.has(e.source) || !nodeIds.has(e.target)) continue;
      const failedN = failedTotal(e.failed);
      els.push({
        group: 'edges',
        data: {
          id: e.id,
          source: e.source,
          target: e.target,
          width: edgeWidth(Number(e.bytes_sent || 0) + Number(e.bytes_received || 0)),
          failedN,
          failLabel: failedN ? `${fmtNum(failedN)} failed` : '',
        },
        classes: big ? 'big' : '',
      });
    }
    this.byId = new Map();
    for (const n of map.nodes) this.byId.set('n:' + n.id, n);
    for (const e of map.edges) this.byId.set('e:' + e.id, e);

    const t0 = performance.now();
    cy.startBatch();
    cy.elements().remove();
    this.marked = null;
    cy.add(els);
    cy.endBatch();

    const leaves = cy.nodes().filter((n) => !n.isParent() && !n.hasClass('flat-box'));
    let known = 0;
    leaves.forEach((n) => {
      const p = this.positions.get(n.id()) || (n.data('pid') && this.positions.get(n.data('pid')));
      if (this.positions.has(n.id())) known++;
      if (p) n.position({ x: p.x + (this.positions.has(n.id()) ? 0 : (jitter() - 0.5) * 60), y: p.y + (this.positions.has(n.id()) ? 0 : (jitter() - 0.5) * 60) });
    });
    const t1 = performance.now();
    return this.layout(leaves, known).then(() => {
      this.timings = { addMs: Math.round(t1 - t0), layoutMs: Math.round(performance.now() - t1) };
    });
  }

  layout(leaves, known) {
    const cy = this.cy;
    const total = leaves.length;
    if (total === 0) return Promise.resolve();
    if (known === total || (total > BIG && known >= total / 2)) {
      // Everything (or, on a big map, most of it) was on screen before: keep the picture; newcomers
      // were put beside their namespace or at random above.
      this.fitFlatBoxes();
      this.fit();
      return Promise.resolve();
    }
    if (total > BIG) {
      this.fit(this.groupedLayout(leaves));
      return Promise.resolve();
    }
    const base = {
      name: 'fcose',
      quality: 'default',
      animate: false,
      fit: true,
      padding: 30,
      nodeDimensionsIncludeLabels: true,
      packComponents: true,
      nodeRepulsion: () => 7000,
      idealEdgeLength: () => 90,
      edgeElasticity: () => 0.45,
      nestingFactor: 0.15,
      gravity: 0.35,
      gravityCompound: 1.2,
      numIter: 2500,
      tile: true,
      randomize: known === 0,
    };
    const run = (opts) => new Promise((resolve) => {
      const l = cy.layout(opts);
      l.one('layoutstop', () => {
        this.fit();
        resolve();
      });
      // Seeded: the same map gets the same picture, so a reloaded link looks as it did.
      withSeededRandom(() => l.run());
    });
    if (known > 0 && known >= total / 2) {
      // Pin what the user already saw; only the newcomers find a place.
      const fixed = [];
      leaves.forEach((n) => {
        if (this.positions.has(n.id()) && !n.parent().nonempty()) fixed.push({ nodeId: n.id(), position: { ...n.position() } });
      });
      return run({ ...base, fixedNodeConstraint: fixed.length ? fixed : undefined }).catch(() => run(base));
    }
    return run(base).catch(() => run({ ...base, randomize: true }));
  }

  /**
   * A big map's layout, linear in its size: each namespace's members in a compact grid (busiest
   * first), the boxes packed in rows, the outsiders in a band below them. fcose over every node
   * of a 500-node compound graph takes seconds, and its picture of a dense graph is a hairball.
   */
  groupedLayout(leaves) {
    const CELL = 64;
    const degree = new Map();
    this.cy.edges().forEach((e) => {
      for (const id of [e.data('source'), e.data('target')]) degree.set(id, (degree.get(id) || 0) + 1);
    });
    const deg = (n) => degree.get(n.id()) || 0;
    const groups = new Map();
    const meta = [];
    leaves.forEach((n) => {
      const p = n.data('pid');
      if (p) {
        if (!groups.has(p)) groups.set(p, []);
        groups.get(p).push(n);
      } else meta.push({ id: n.id(), w: n.width() + 20, h: n.height() + 30, members: null });
    });
    for (const [id, members] of groups) {
      members.sort((a, b) => deg(b) - deg(a));
      const cols = Math.ceil(Math.sqrt(members.length * 1.6));
      const rows = Math.ceil(members.length / cols);
      meta.push({ id, w: cols * CELL + 30, h: rows * CELL + 40, members, cols });
    }
    // Boxes packed in shelves (tallest first), outsiders in a band below, grouped by kind:
    // nothing overlaps, and the cost is linear.
    const boxes = meta.filter((m) => m.members).sort((x, y) => y.h - x.h || y.w - x.w);
    const loose = meta.filter((m) => !m.members);
    const GAP = 40;
    const area = boxes.reduce((acc, m) => acc + (m.w + GAP) * (m.h + GAP), 0);
    const rowWidth = Math.max(600, Math.sqrt(area * 1.9), ...boxes.map((m) => m.w));
    const pos = new Map();
    let x = 0;
    let y = 0;
    let rowH = 0;
    for (const m of boxes) {
      if (x > 0 && x + m.w > rowWidth) {
        x = 0;
        y += rowH + GAP;
        rowH = 0;
      }
      pos.set(m.id, { x: x + m.w / 2, y: y + m.h / 2 });
      x += m.w + GAP;
      rowH = Math.max(rowH, m.h);
    }
    y += rowH + (boxes.length ? GAP * 1.5 : 0);
    const order = ['external', 'unknown', 'node', 'service', 'namespace', 'workload', 'pod', 'other'];
    const kindOf = (m) => this.cy.getElementById(m.id).data('kind');
    loose.sort((p, q) => order.indexOf(kindOf(p)) - order.indexOf(kindOf(q)));
    const LW = 110;
    const perRow = Math.max(1, Math.floor(Math.max(rowWidth, 600) / LW));
    loose.forEach((m, i) => pos.set(m.id, { x: (i % perRow) * LW + LW / 2, y: y + Math.floor(i / perRow) * 70 + 20 }));
    const bb = { x1: Infinity, y1: Infinity, x2: -Infinity, y2: -Infinity };
    for (const m of meta) {
      const c = pos.get(m.id);
      bb.x1 = Math.min(bb.x1, c.x - m.w / 2);
      bb.x2 = Math.max(bb.x2, c.x + m.w / 2);
      bb.y1 = Math.min(bb.y1, c.y - m.h / 2);
      bb.y2 = Math.max(bb.y2, c.y + m.h / 2);
    }
    this.cy.startBatch();
    for (const m of meta) {
      const c = pos.get(m.id);
      if (!m.members) {
        this.cy.getElementById(m.id).position({ x: c.x, y: c.y });
        continue;
      }
      const x0 = c.x - (m.cols * CELL) / 2 + CELL / 2;
      const y0 = c.y - (Math.ceil(m.members.length / m.cols) * CELL) / 2 + CELL / 2;
      m.members.forEach((n, i) => n.position({ x: x0 + (i % m.cols) * CELL, y: y0 + Math.floor(i / m.cols) * CELL }));
    }
    this.cy.endBatch();
    this.fitFlatBoxes();
    return bb;
  }

  /** Sizes and places the plain-node namespace boxes of a big map around their members. */
  fitFlatBoxes() {
    if (!this.flat) return;
    const cy = this.cy;
    const ext = new Map();
    cy.nodes().forEach((n) => {
      const p = n.data('pid');
      if (!p) return;
      const { x, y } = n.position();
      const e = ext.get(p) || { x1: Infinity, y1: Infinity, x2: -Infinity, y2: -Infinity };
      ext.set(p, { x1: Math.min(e.x1, x), y1: Math.min(e.y1, y), x2: Math.max(e.x2, x), y2: Math.max(e.y2, y) });
    });
    cy.startBatch();
    cy.nodes('.flat-box').forEach((b) => {
      const e = ext.get(b.id());
      if (!e) return;
      b.position({ x: (e.x1 + e.x2) / 2, y: (e.y1 + e.y2) / 2 + 6 });
      b.data({ bw: e.x2 - e.x1 + 64, bh: e.y2 - e.y1 + 76 });
    });
    cy.endBatch();
  }

  /** Fits the map, without blowing a small map up beyond readable label sizes. */
  fit(bb) {
    const cy = this.cy;
    if (bb && Number.isFinite(bb.x1)) {
      // A known extent: no need to measure every label and edge (cy.fit does).
      const pad = 30;
      const w = cy.width() - 2 * pad;
      const hgt = cy.height() - 2 * pad;
      const z = Math.min(1.25, w / (bb.x2 - bb.x1), hgt / (bb.y2 - bb.y1));
      cy.viewport({ zoom: z, pan: { x: pad + (w - z * (bb.x2 - bb.x1)) / 2 - z * bb.x1, y: pad + (hgt - z * (bb.y2 - bb.y1)) / 2 - z * bb.y1 } });
      return;
    }
    cy.fit(undefined, 30);
    if (cy.zoom() > 1.25) {
      cy.zoom(1.25);
      cy.center();
    }
  }

  select(sel) {
    const cy = this.cy;
    cy.startBatch();
    try {
      return this.selectIn(cy, sel);
    } finally {
      cy.endBatch();
    }
  }

  selectIn(cy, sel) {
    cy.$(':selected').unselect();
    if (this.marked) this.marked.removeClass('faded hl');
    this.marked = null;
    if (!sel) return false;
    const el = cy.getElementById(sel.slice(2));
    if (!el || el.empty()) return false;
    el.select();
    let keep;
    if (el.isNode()) {
      const own = el.hasClass('flat-box') ? el.union(cy.nodes().filter((n) => n.data('pid') === el.id())) : el.union(el.descendants());
      keep = own.union(own.neighborhood()).union(el.ancestors());
    } else keep = el.union(el.connectedNodes());
    keep = keep.union(keep.ancestors());
    if (cy.edges().length > 800) {
      // Restyling thousands of elements takes a while: a big map highlights the neighbourhood.
      this.marked = keep.not(el).addClass('hl');
    } else {
      this.marked = cy.elements().not(keep).addClass('faded');
    }
    return true;
  }

  item(sel) {
    return this.byId ? this.byId.get(sel) : null;
  }

  namespaces() {
    return this.data ? [...new Set(this.data.nodes.map((n) => n.namespace).filter(Boolean))] : [];
  }

  showTip(evt) {
    const el = evt.target;
    const d = this.byId && this.byId.get((el.isNode() ? 'n:' : 'e:') + el.id());
    if (!d) return;
    this.tooltip.replaceChildren(...(el.isNode() ? nodeTip(d) : edgeTip(d, this)));
    this.tooltip.classList.add('show');
    this.moveTip(evt);
  }

  moveTip(evt) {
    const p = evt.renderedPosition || evt.target.renderedPosition();
    const w = this.container.clientWidth;
    const tw = this.tooltip.offsetWidth;
    const x = p.x + 16 + tw > w ? p.x - tw - 12 : p.x + 16;
    this.tooltip.style.transform = `translate(${Math.max(0, x)}px, ${Math.max(0, p.y + 12)}px)`;
  }

  hideTip() {
    this.tooltip.classList.remove('show');
  }
}

function row(k, v, cls) {
  return h('tr', cls ? { class: cls } : null, h('th', null, k), h('td', null, v));
}

function nodeTip(n) {
  return [
    h('div', { class: 'tip-title' }, n.label || n.id),
    h('table', null,
      row('kind', n.box ? 'namespace (expanded)' : n.kind),
      n.namespace ? row('namespace', n.namespace) : null,
      n.box ? null : row('connections', fmtNum(n.connections)),
      n.box ? null : row('bytes', fmtBytes(n.bytes))),
    h('div', { class: 'tip-hint' }, n.kind === 'namespace' ? (n.box ? 'double-click: collapse' : 'click: its rows · double-click: expand') : 'click: its rows'),
  ];
}

function edgeTip(e, view) {
  const name = (id) => {
    const n = view.byId.get('n:' + id);
    return n ? n.label || id : id;
  };
  const f = failedTotal(e.failed);
  return [
    h('div', { class: 'tip-title' }, name(e.source), ' → ', name(e.target)),
    h('table', null,
      row('connections', fmtNum(e.connections)),
      row('failed', f ? Object.entries(e.failed).map(([k, v]) => `${k} ${fmtNum(v)}`).join(', ') : '0', f ? 'bad' : null),
      row('bytes sent / received', `${fmtBytes(e.bytes_sent)} / ${fmtBytes(e.bytes_received)}`),
      row('packets', fmtNum(e.packets)),
      row('handshake RTT p50 / p95', e.rtt_p50_ms == null ? '–' : `${fmtMs(e.rtt_p50_ms)} / ${fmtMs(e.rtt_p95_ms)}`),
      row('retransmissions', fmtNum(e.retransmissions)),
      row('protocols', (e.protocols || []).join(', ') || '–'),
      row('top ports', (e.top_ports || []).slice(0, 4).map((p) => `${p.port}/${p.protocol} (${fmtNum(p.connections)})`).join(', ') || '–'),
      row('first / last seen', `${fmtTime(e.first_seen)} / ${fmtTime(e.last_seen).slice(11)}`)),
    h('div', { class: 'tip-hint' }, 'click: its rows'),
  ];
}
