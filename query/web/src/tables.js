// The tables under the map: connections (paged, rows expand to the record and its packets),
// DNS transactions, and capture health (capture_stats per node and minute).
import { h, fmtBytes, fmtNum, fmtTime, toMs } from './util.js';
import { sql, ApiError } from './api.js';

export const PAGE = 50;

const FAILED = new Set(['reset', 'refused', 'no_answer', 'aborted', 'unreachable', 'midstream', 'no_response', 'response_only']);

function endpoint(r, side) {
  const ns = r[`${side}_namespace`];
  const name = r[`${side}_name`];
  const ip = r[`${side}_ip`];
  const port = r[`${side}_port`];
  const who = name ? (ns ? `${ns}/${name}` : name) : ip;
  return h('span', { class: 'ep', title: `${ip}:${port}` }, who || '–', h('span', { class: 'port' }, `:${port ?? ''}`));
}

function outcomeBadge(o, extra) {
  if (!o) return '–';
  return h('span', { class: 'badge ' + (FAILED.has(o) ? 'bad' : 'good') }, o.replace('_', ' '), extra ? ` (${extra})` : '');
}

const sum = (a, b) => Number(a || 0) + Number(b || 0);

export const CONN_COLUMNS = [
  { name: 'time (UTC)', cell: (r) => h('span', { class: 'mono' }, fmtTime(r.start_ts)) },
  { name: 'proto', cell: (r) => r.protocol },
  { name: 'source', cell: (r) => endpoint(r, 'src') },
  { name: 'destination', cell: (r) => endpoint(r, 'dst') },
  { name: 'outcome', cell: (r) => h('span', null, outcomeBadge(r.outcome, r.reset_by ? `by ${r.reset_by}` : ''), r.is_final === false ? h('span', { class: 'badge interim', title: 'an interim row of a long connection' }, `row ${r.row_seq}`) : null) },
  { name: 'bytes → / ←', num: true, cell: (r) => `${fmtBytes(r.src_bytes)} / ${fmtBytes(r.dst_bytes)}` },
  { name: 'packets', num: true, cell: (r) => fmtNum(sum(r.src_packets, r.dst_packets)) },
  { name: 'RTT', num: true, cell: (r) => (r.handshake_rtt_us == null ? '–' : `${(Number(r.handshake_rtt_us) / 1000).toFixed(2)} ms`) },
  { name: 'retrans', num: true, cell: (r) => fmtNum(sum(r.src_retransmits, r.dst_retransmits)) },
  { name: 'node', cell: (r) => r.node || '–' },
];

export const DNS_COLUMNS = [
  { name: 'time (UTC)', cell: (r) => h('span', { class: 'mono' }, fmtTime(r.ts ?? r.start_ts)) },
  { name: 'client', cell: (r) => endpoint(r, 'src') },
  { name: 'server', cell: (r) => endpoint(r, 'dst') },
  { name: 'query', cell: (r) => h('span', { class: 'mono' }, r.query_name || '–') },
  { name: 'type', cell: (r) => r.query_type || '–' },
  { name: 'rcode', cell: (r) => (r.rcode ? h('span', { class: 'badge ' + (r.rcode === 'NOERROR' ? 'good' : 'bad') }, r.rcode) : '–') },
  { name: 'answers', cell: (r) => h('span', { class: 'mono small' }, Array.isArray(r.answers) ? r.answers.join(', ') : r.answers ?? '') },
  { name: 'latency', num: true, cell: (r) => (r.latency_us == null ? '–' : `${(Number(r.latency_us) / 1000).toFixed(2)} ms`) },
  { name: 'outcome', cell: (r) => outcomeBadge(r.outcome) },
  { name: 'node', cell: (r) => r.node || '–' },
];

/** Every field of a record as a definition grid, the interesting ones first. */
function recordGrid(r) {
  const first = ['outcome', 'reset_by', 'closed_by', 'protocol', 'src_flags', 'dst_flags', 'handshake_rtt_us', 'src_retransmits', 'dst_retransmits',
    'src_zero_windows', 'dst_zero_windows', 'icmp_type', 'icmp_code', 'icmp_errors', 'icmp_error_src', 'dst_dns_name', 'node', 'conn_id', 'row_seq', 'is_final'];
  const keys = [...first.filter((k) => k in r), ...Object.keys(r).filter((k) => !first.includes(k))];
  return h('dl', { class: 'record' }, keys.flatMap((k) => {
    let v = r[k];
    if (v == null) v = 'null';
    else if (Array.isArray(v)) v = v.length ? v.join(', ') : '[]';
    else if (typeof v === 'object') v = JSON.stringify(v);
    else if (v === '') v = "''";
    return [h('dt', null, k), h('dd', { class: /_ts$/.test(k) ? 'mono' : '' }, /_ts$|^ts$/.test(k) ? `${v}` : String(v))];
  }));
}

const sqlString = (s) => "'" + String(s).replace(/'/g, "''") + "'";

async function packetsOf(r) {
  if (r.conn_id == null) return h('p', { class: 'muted' }, 'no conn_id on this row');
  const where = [`conn_id = ${/^\d+$/.test(String(r.conn_id)) ? r.conn_id : sqlString(r.conn_id)}`];
  if (r.node != null) where.push(`node = ${sqlString(r.node)}`);
  let rows;
  try {
    rows = await sql(`SELECT * FROM packets WHERE ${where.join(' AND ')} ORDER BY ts LIMIT 500`, 500);
  } catch (e) {
    return h('p', { class: 'muted' }, e instanceof ApiError ? `No packets table in this store (capture ran without --packets): ${e.message}` : String(e));
  }
  if (!rows.length) return h('p', { class: 'muted' }, 'The packets table holds no packets of this connection (capture ran without --packets, or kept none for it).');
  const t0 = toMs(rows[0].ts);
  return h('div', null,
    h('div', { class: 'sub-title' }, `packets (${rows.length}${rows.length === 500 ? '+, first 500' : ''})`),
    h('table', { class: 'rows packets' },
      h('thead', null, h('tr', null, ['+ms', 'dir', 'flags', 'seq', 'ack', 'win', 'IP bytes', 'payload'].map((c) => h('th', null, c)))),
      h('tbody', null, rows.map((p) => h('tr', null,
        h('td', { class: 'num mono' }, (toMs(p.ts) - t0).toFixed(1)),
        h('td', null, p.from_initiator ? '→' : '←'),
        h('td', { class: 'mono' }, p.flags || '–'),
        h('td', { class: 'num mono' }, p.seq ?? '–'),
        h('td', { class: 'num mono' }, p.ack ?? '–'),
        h('td', { class: 'num' }, p.window ?? '–'),
        h('td', { class: 'num' }, fmtNum(p.ip_bytes)),
        h('td', { class: 'num' }, fmtNum(p.payload_bytes)))))));
}

/** A paged table of rows fetched with limit/offset. */
export class RowsTable {
  constructor(container, columns, { packets = false } = {}) {
    this.container = container;
    this.columns = columns;
    this.packets = packets;
    this.offset = 0;
    this.source = null;
    this.loads = 0;
    this.title = h('div', { class: 'rows-title' });
    this.pager = h('div', { class: 'pager' });
    this.tbody = h('tbody');
    this.table = h('table', { class: 'rows' },
      h('thead', null, h('tr', null, h('th', { class: 'exp' }), columns.map((c) => h('th', { class: c.num ? 'num' : '' }, c.name)))),
      this.tbody);
    container.append(h('div', { class: 'rows-head' }, this.title, this.pager), h('div', { class: 'rows-scroll' }, this.table));
  }

  /** source = {title, fetch(offset, limit) → rows, count() → n | null} */
  async show(source) {
    this.source = source;
    this.offset = 0;
    this.total = null;
    this.title.replaceChildren(source.title);
    const seq = ++this.seq || (this.seq = 1);
    const counted = source.count
      ? source.count().then((n) => {
        if (this.seq === seq && n != null) {
          this.total = n;
          this.paintPager();
        }
      }).catch(() => {})
      : null;
    await Promise.all([this.load(), counted]);
  }

  async load() {
    const src = this.source;
    const seq = this.seq;
    this.tbody.replaceChildren(h('tr', null, h('td', { colspan: this.columns.length + 1, class: 'muted' }, 'loading…')));
    let rows;
    try {
      rows = await src.fetch(this.offset, PAGE + 1);
    } catch (e) {
      if (seq !== this.seq) return;
      this.rows = [];
      this.more = false;
      this.tbody.replaceChildren(h('tr', null, h('td', { colspan: this.columns.length + 1, class: 'error-cell' }, e.message || String(e))));
      this.paintPager();
      this.loads++;
      return;
    }
    if (seq !== this.seq) return;
    this.more = rows.length > PAGE;
    this.rows = rows.slice(0, PAGE);
    this.tbody.replaceChildren(...(this.rows.length ? this.rows.map((r, i) => this.rowEl(r, i)) : [h('tr', null, h('td', { colspan: this.columns.length + 1, class: 'muted empty' }, 'no rows in this window', src.empty ? [' ', src.empty()] : []))]));
    this.paintPager();
    this.loads++;
  }

  rowEl(r, i) {
    const tr = h('tr', { class: 'row', dataset: { i } },
      h('td', { class: 'exp' }, '▸'),
      this.columns.map((c) => h('td', { class: c.num ? 'num' : '' }, c.cell(r))));
    tr.addEventListener('click', () => this.toggle(tr, r));
    return tr;
  }

  toggle(tr, r) {
    const next = tr.nextElementSibling;
    if (next && next.classList.contains('detail')) {
      next.remove();
      tr.classList.remove('open');
      tr.firstChild.textContent = '▸';
      return;
    }
    tr.classList.add('open');
    tr.firstChild.textContent = '▾';
    const cell = h('td', { colspan: this.columns.length + 1 }, recordGrid(r));
    const d = h('tr', { class: 'detail' }, cell);
    tr.after(d);
    if (this.packets) {
      const slot = h('div', { class: 'packets-slot muted' }, 'looking for packets…');
      cell.append(slot);
      packetsOf(r).then((el) => slot.replaceWith(el));
    }
  }

  paintPager() {
    const n = this.rows ? this.rows.length : 0;
    const from = n ? this.offset + 1 : 0;
    const to = this.offset + n;
    const of = this.total != null ? ` of ${fmtNum(this.total)}` : this.more ? '+' : '';
    this.pager.replaceChildren(
      h('span', { class: 'range', dataset: { total: this.total ?? '' } }, `rows ${fmtNum(from)}–${fmtNum(to)}${of}`),
      h('button', { class: 'small', disabled: this.offset === 0, onclick: () => { this.offset = Math.max(0, this.offset - PAGE); this.load(); } }, '‹ prev'),
      h('button', { class: 'small next', disabled: !this.more, onclick: () => { this.offset += PAGE; this.load(); } }, 'next ›'));
  }
}

/** Capture health: capture_stats per node and minute, what was read, tracked, skipped (why), lost. */
export class HealthView {
  constructor(container) {
    this.container = container;
    this.loads = 0;
  }

  async show(from, to) {
    const c = this.container;
    c.replaceChildren(h('p', { class: 'muted' }, 'loading capture statistics…'));
    const where = [];
    if (from != null) where.push(`CAST(ts AS BIGINT) >= ${Math.floor(from) * 1000}`);
    if (to != null) where.push(`CAST(ts AS BIGINT) < ${Math.floor(to) * 1000}`);
    let rows;
    try {
      rows = await sql(`SELECT * FROM capture_stats${where.length ? ' WHERE ' + where.join(' AND ') : ''} ORDER BY ts, node LIMIT 5000`, 5000);
    } catch (e) {
      c.replaceChildren(h('p', { class: 'error-cell' }, e.message || String(e)));
      this.loads++;
      return;
    }
    // Sum per node and minute (sources of one node merged).
    const groups = new Map();
    const counters = new Set();
    for (const r of rows) {
      const minute = Math.floor(toMs(r.ts) / 60000) * 60000;
      const key = `${r.node}\u0000${minute}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { node: r.node, minute, sources: new Set() }));
      g.sources.add(r.source);
      for (const [k, v] of Object.entries(r)) {
        if (typeof v === 'number' && !/ts$/.test(k)) {
          g[k] = (g[k] || 0) + v;
          counters.add(k);
        }
      }
    }
    const list = [...groups.values()];
    const total = (k) => list.reduce((a, g) => a + (g[k] || 0), 0);
    const reasons = [...counters].filter((k) => k.startsWith('skipped_') && total(k) > 0);
    const lossCols = ['packets_filtered', 'events_lost', 'packets_lost', 'kernel_flows_evicted', 'connections_evicted', 'dns_parse_errors', 'packets_deduplicated'].filter((k) => counters.has(k));
    const cols = ['packets', 'packets_tracked', 'skipped', ...reasons, ...lossCols].filter((k) => counters.has(k));
    const label = (k) => k.replace(/^skipped_/, 'skipped: ').replace(/_/g, ' ');
    const summary = h('div', { class: 'health-summary' },
      h('div', { class: 'stat' }, h('b', null, fmtNum(total('packets'))), ' packets read'),
      h('div', { class: 'stat' }, h('b', null, fmtNum(total('packets_tracked'))), ' tracked'),
      h('div', { class: 'stat' + (total('skipped') ? ' warn' : '') }, h('b', null, fmtNum(total('skipped'))), ' skipped',
        reasons.length ? h('span', { class: 'muted' }, ' (', reasons.map((k) => `${label(k).slice(9)} ${fmtNum(total(k))}`).join(', '), ')') : null),
      ...lossCols.map((k) => h('div', { class: 'stat' + (total(k) && k !== 'packets_deduplicated' ? ' warn' : '') }, h('b', null, fmtNum(total(k))), ' ', label(k))));
    if (!list.length) {
      c.replaceChildren(summary, h('p', { class: 'muted' }, 'No capture_stats rows in this window.'));
      this.loads++;
      return;
    }
    const table = h('table', { class: 'rows health' },
      h('thead', null, h('tr', null, h('th', null, 'minute (UTC)'), h('th', null, 'node'), h('th', null, 'sources'), cols.map((k) => h('th', { class: 'num' }, label(k))))),
      h('tbody', null, list.map((g) => h('tr', null,
        h('td', { class: 'mono' }, fmtTime(g.minute).slice(0, 16)),
        h('td', null, g.node || "''"),
        h('td', { class: 'small' }, [...g.sources].join(', ')),
        cols.map((k) => h('td', { class: 'num' + ((k.startsWith('skipped') || /lost|evicted|errors/.test(k)) && g[k] ? ' warnval' : '') }, fmtNum(g[k] || 0)))))));
    c.replaceChildren(summary,
      h('p', { class: 'muted small' }, 'capture_stats, summed per capturing node and minute. Skipped packets never became connections; lost and filtered ones were never seen by user space — this is why traffic can be missing from the map.'),
      h('div', { class: 'rows-scroll' }, table));
    this.loads++;
  }
}
