// A small stand-in for `podwire serve` while developing the page: serves a built page directory
// and answers the API in the contract's shapes from a hand-written copy of the demo scene.
// It ignores most of the filter (only `dst.namespace == ""` and a misspelt field are understood).
// The browser tests never use it: they run against the real binary.
//   node tests/browser/mock-server.mjs DIST [PORT]
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

const dist = process.argv[2];
const port = Number(process.argv[3] || 0);
const T0 = Date.UTC(2026, 10, 26, 9, 0, 0);
const ep = (ns, pod, wl, ip, node = 'node-a') => ({ ns, pod, wl, ip, node: ns ? node : '' });
const FE = ep('shop', 'frontend-6d4cf56db6-qz7mn', 'frontend', '10.244.1.11');
const WEB = ep('shop', 'web-7c9d8f6b5d-x2k4p', 'web', '10.244.1.10');
const REP = ep('batch', 'report-29000000-bx6kt', 'report', '10.244.1.12');
const DNS = { ns: 'kube-system', pod: '', wl: '', svc: 'kube-dns', ip: '10.96.0.10', node: '' };
const API = { ns: '', pod: '', wl: '', ip: '203.0.113.10', name: 'api.example.com', node: '' };
const BH = { ns: '', pod: '', wl: '', ip: '203.0.113.99', name: '', node: '' };
const R = [
  [FE, DNS, 'udp', 53, 'answered'], [FE, WEB, 'tcp', 8080, 'closed'], [FE, DNS, 'udp', 53, 'answered'], [FE, WEB, 'tcp', 8080, 'closed'],
  [FE, DNS, 'udp', 53, 'answered'], [FE, WEB, 'tcp', 8080, 'closed'], [REP, DNS, 'udp', 53, 'answered'], [REP, WEB, 'tcp', 8080, 'closed'],
  [REP, DNS, 'udp', 53, 'answered'], [REP, WEB, 'tcp', 8080, 'closed'], [REP, DNS, 'udp', 53, 'answered'], [REP, BH, 'tcp', 5432, 'no_answer'],
  [FE, DNS, 'udp', 53, 'answered'], [FE, API, 'tcp', 80, 'closed'], [FE, WEB, 'tcp', 8081, 'refused'], [FE, WEB, 'udp', 7, 'answered'],
  [FE, WEB, 'udp', 9999, 'unreachable'], [FE, WEB, 'tcp', 9000, 'reset'],
];
const rows = R.map(([s, d, proto, dport, outcome], i) => ({
  start_ts: new Date(T0 + i * 300 + (i > 11 ? 2500 : 0)).toISOString(), end_ts: new Date(T0 + i * 300 + 50).toISOString(),
  conn_id: String(1234567890123456789n + BigInt(i)), row_seq: 0, is_final: true, protocol: proto,
  src_ip: s.ip, src_port: 40000 + i, dst_ip: d.ip, dst_port: dport, src_packets: 5, dst_packets: outcome === 'no_answer' ? 0 : 4,
  src_bytes: 400 + i * 10, dst_bytes: outcome === 'no_answer' ? 0 : 900 + i * 40, outcome, src_flags: proto === 'tcp' ? 'SAPF' : '', dst_flags: proto === 'tcp' ? 'SAPF' : '',
  handshake_rtt_us: proto === 'tcp' && outcome !== 'no_answer' && outcome !== 'refused' ? 120 + i : null, src_retransmits: outcome === 'no_answer' ? 2 : 0, dst_retransmits: 0,
  reset_by: outcome === 'reset' || outcome === 'refused' ? 'dst' : '', icmp_type: outcome === 'unreachable' ? 3 : null, icmp_code: outcome === 'unreachable' ? 3 : null,
  dst_dns_name: d.name || '', node: 'node-a', src_name: s.pod, src_namespace: s.ns, src_pod: s.pod, src_workload: s.wl, src_node: s.node,
  dst_name: d.pod || d.svc || d.name || '', dst_namespace: d.ns, dst_pod: d.pod, dst_workload: d.wl, dst_service: d.svc || '', dst_node: d.node,
}));
const FAIL = new Set(['reset', 'refused', 'no_answer', 'aborted', 'unreachable', 'midstream']);

function side(r, s, level, expand) {
  const ns = r[`${s}_namespace`];
  if (!ns) {
    const name = r[`${s}_name`] || r[`${s}_ip`];
    return { id: `ext:${name}`, label: name, kind: 'external', namespace: '', parent: null, match: { src: `src.ip == "${r[s + '_ip']}"`, dst: `dst.ip == "${r[s + '_ip']}"` } };
  }
  const open = level !== 'namespace' && (expand == null || expand.includes(ns));
  if (!open) return { id: `ns:${ns}`, label: ns, kind: 'namespace', namespace: ns, parent: null, match: { src: `src.namespace == "${ns}"`, dst: `dst.namespace == "${ns}"` } };
  if (!r[`${s}_pod`]) {
    const svc = r[`${s}_service`] || r[`${s}_name`];
    return { id: `svc:${ns}/${svc}`, label: svc, kind: 'service', namespace: ns, parent: `ns:${ns}`, match: { src: `src.service == "${svc}"`, dst: `dst.service == "${svc}"` } };
  }
  const key = level === 'pod' ? r[`${s}_pod`] : r[`${s}_workload`];
  const kind = level === 'pod' ? 'pod' : 'workload';
  const f = level === 'pod' ? 'pod' : 'workload';
  return { id: `${level === 'pod' ? 'pod' : 'wl'}:${ns}/${key}`, label: key, kind, namespace: ns, parent: `ns:${ns}`, match: { src: `src.namespace == "${ns}" and src.${f} == "${key}"`, dst: `dst.namespace == "${ns}" and dst.${f} == "${key}"` } };
}

function filterRows(q) {
  let out = rows;
  if (/dst\.namespace == ""/.test(q)) out = out.filter((r) => r.dst_namespace === '');
  return out;
}

function map(u) {
  const level = u.searchParams.get('level') || 'namespace';
  const expand = u.searchParams.has('expand') ? u.searchParams.get('expand').split(',') : null;
  const nodes = new Map();
  const edges = new Map();
  for (const r of filterRows(u.searchParams.get('query') || '')) {
    const a = side(r, 'src', level, expand);
    const b = side(r, 'dst', level, expand);
    for (const n of [a, b]) {
      if (!nodes.has(n.id)) nodes.set(n.id, { ...n, connections: 0, bytes: 0 });
      nodes.get(n.id).connections++;
      nodes.get(n.id).bytes += r.src_bytes + r.dst_bytes;
      if (n.parent && !nodes.has(n.parent)) nodes.set(n.parent, { id: n.parent, label: n.namespace, kind: 'namespace', namespace: n.namespace, parent: null, box: true, connections: 0, bytes: 0, match: null });
    }
    const id = `${a.id}->${b.id}`;
    if (!edges.has(id)) edges.set(id, { id, source: a.id, target: b.id, connections: 0, failed: {}, bytes_sent: 0, bytes_received: 0, packets: 0, rtt_p50_ms: 0.12, rtt_p95_ms: 0.2, retransmissions: 0, protocols: [], top_ports: [], first_seen: Date.parse(r.start_ts), last_seen: 0, kfl: `(${a.match.src}) and (${b.match.dst})` });
    const e = edges.get(id);
    e.connections++;
    if (FAIL.has(r.outcome)) e.failed[r.outcome] = (e.failed[r.outcome] || 0) + 1;
    e.bytes_sent += r.src_bytes;
    e.bytes_received += r.dst_bytes;
    e.packets += r.src_packets + r.dst_packets;
    if (!e.protocols.includes(r.protocol)) e.protocols.push(r.protocol);
    const p = e.top_ports.find((x) => x.port === r.dst_port);
    if (p) p.connections++;
    else e.top_ports.push({ port: r.dst_port, protocol: r.protocol, connections: 1 });
    e.last_seen = Date.parse(r.start_ts);
  }
  return { level, from_ms: T0, to_ms: T0 + 8000, nodes: [...nodes.values()], edges: [...edges.values()], folded: null, sql: `SELECT … FROM connections WHERE ${u.searchParams.get('query') || 'TRUE'}` };
}

function kflError(q) {
  const i = q.indexOf('dst.nam ');
  if (i < 0) return null;
  return { error: { class: 'SEM_UNKNOWN_FIELD', message: 'unknown field `dst.nam`', line: 1, col: i + 1, start: i, end: i + 7, hint: 'did you mean `dst.name`?', diagnostic: `${q}\n${' '.repeat(i)}^^^^^^^` } };
}

const send = (res, code, body, type = 'application/json') => {
  res.writeHead(code, { 'content-type': type });
  res.end(typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body));
};

const server = http.createServer(async (req, res) => {
  const u = new URL(req.url, 'http://x');
  let body = '';
  for await (const c of req) body += c;
  const q = u.searchParams.get('query') || (body ? JSON.parse(body).query || '' : '');
  const err = kflError(q);
  if (u.pathname.startsWith('/api/') && err) return send(res, 400, err);
  if (u.pathname === '/api/v1/map') return send(res, 200, map(u));
  if (u.pathname === '/api/v1/timeline') {
    const buckets = [];
    for (let i = 0; i < 120; i++) buckets.push({ t: T0 + i * 67, connections: 0, failed: 0 });
    for (const r of filterRows(q)) {
      const b = buckets[Math.min(119, Math.floor((Date.parse(r.start_ts) - T0) / 67))];
      b.connections++;
      if (FAIL.has(r.outcome)) b.failed++;
    }
    return send(res, 200, { from_ms: T0, to_ms: T0 + 8040, bucket_ms: 67, buckets, data_from_ms: T0, data_to_ms: T0 + 7900, sql: 'SELECT …' });
  }
  if (u.pathname === '/api/v1/fields') {
    return send(res, 200, { fields: [{ name: 'dst.namespace', type: 'string', tables: ['connections', 'dns'], doc: 'responder namespace' }, { name: 'dst.name', type: 'string', tables: ['connections'], doc: 'responder name' }, { name: 'outcome', type: 'string', tables: ['connections'], doc: 'outcome', values: [{ value: 'closed', doc: '' }, { value: 'refused', doc: '' }] }], aliases: ['tcp', 'udp', 'dns', 'error'], helpers: ['startsWith', 'contains'] });
  }
  if (u.pathname === '/api/v1/translate') return send(res, 200, { sql: 'SELECT * FROM connections', pretty_sql: '' });
  if (u.pathname === '/api/v1/sql') {
    const s = JSON.parse(body).sql;
    if (/count\(\*\)/.test(s)) return send(res, 200, [{ n: filterRows(q).length }]);
    if (/capture_stats/.test(s)) return send(res, 200, [{ ts: new Date(T0).toISOString(), end_ts: new Date(T0 + 7900).toISOString(), node: 'node-a', source: 'pcap:scene.pcap', packets: 117, bytes: 12000, packets_tracked: 101, skipped: 16, skipped_not_ip: 16, skipped_bad_ip_header: 0 }]);
    return send(res, 400, { error: { class: 'QUERY_FAILED', message: 'table packets not found' } });
  }
  if (u.pathname === '/api/v1/query') {
    const b = JSON.parse(body);
    const list = /\bdns\b(?!\))/.test(b.query || '') && !/!dns/.test(b.query) ? [] : filterRows(b.query || '');
    return send(res, 200, list.slice(b.offset || 0, (b.offset || 0) + (b.limit || 1000)));
  }
  const file = u.pathname === '/' ? 'index.html' : u.pathname.replace(/^\/assets\//, '');
  const p = path.join(dist, path.basename(file));
  if (fs.existsSync(p)) {
    const type = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' }[path.extname(p)] || 'application/octet-stream';
    return send(res, 200, fs.readFileSync(p), type);
  }
  send(res, 404, { error: { class: 'NOT_FOUND', message: u.pathname } });
});
server.listen(port, '127.0.0.1', () => console.log(`listening on http://127.0.0.1:${server.address().port}`));
