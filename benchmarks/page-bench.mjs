// The dashboard in headless Chromium drawing a synthetic map of 500 nodes and 2,000 edges in 20
// namespace boxes: time until interactive (page load → map laid out → a click on a node handled),
// target < 2 s; and the page's compressed transfer size (sum of the gzip files), target < 600 KB.
//
//   npm ci --prefix query/web && npm ci --prefix tests/browser
//   node benchmarks/page-bench.mjs [--runs 5]        (PODWIRE_WEB_DIST=dir to use a built page)
//
// No podwire server is needed: every request is answered with page.route (the page's files from
// the build, the API with generated JSON in the contract's shapes).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..');
const runs = Number(process.argv[process.argv.indexOf('--runs') + 1]) || 5;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
if (!fs.existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium chromium-driver`);
const require = createRequire(path.join(repo, 'tests/browser/package.json'));
const { chromium } = require('playwright-core');

let dist = process.env.PODWIRE_WEB_DIST;
if (!dist) {
  dist = fs.mkdtempSync(path.join(os.tmpdir(), 'podwire-web-'));
  const r = spawnSync('node', [path.join(repo, 'query/web/build.cjs'), dist], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`page build failed: ${r.stderr}`);
}

// ---- the synthetic map ------------------------------------------------------------------------
function rng(seed) {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

function syntheticMap() {
  const rand = rng(42);
  const nodes = [];
  const leaves = [];
  for (let i = 0; i < 20; i++) {
    const ns = `team-${String(i).padStart(2, '0')}`;
    nodes.push({ id: `ns:${ns}`, label: ns, kind: 'namespace', namespace: ns, parent: null, box: true, connections: 0, bytes: 0, match: null });
    for (let j = 0; j < 22; j++) {
      const w = `svc-${j}-${['api', 'worker', 'db', 'cache'][j % 4]}`;
      const n = { id: `wl:${ns}/${w}`, label: w, kind: j % 7 === 6 ? 'service' : 'workload', namespace: ns, parent: `ns:${ns}`, connections: 0, bytes: 0,
        match: { src: `src.namespace == "${ns}" and src.workload == "${w}"`, dst: `dst.namespace == "${ns}" and dst.workload == "${w}"` } };
      nodes.push(n);
      leaves.push(n);
    }
  }
  for (let i = 0; i < 30; i++) leaves.push({ id: `ext:api${i}.example.com`, label: `api${i}.example.com`, kind: 'external', namespace: '', parent: null, match: { src: `src.name == "api${i}.example.com"`, dst: `dst.name == "api${i}.example.com"` } });
  for (let i = 0; i < 10; i++) leaves.push({ id: `node:node-${i}`, label: `node-${i}`, kind: 'node', namespace: '', parent: null, match: { src: `src.node == "node-${i}"`, dst: `dst.node == "node-${i}"` } });
  for (let i = 0; i < 20; i++) leaves.push({ id: `unknown:198.51.100.${i}`, label: `198.51.100.${i}`, kind: 'unknown', namespace: '', parent: null, match: { src: `src.ip == "198.51.100.${i}"`, dst: `dst.ip == "198.51.100.${i}"` } });
  for (const l of leaves.slice(440)) nodes.push({ ...l, connections: 0, bytes: 0 });
  const edges = new Map();
  const t0 = Date.UTC(2026, 10, 26, 9);
  while (edges.size < 2000) {
    // Mostly within a namespace or to a neighbour; some to the outside.
    const ai = Math.floor(rand() * 440);
    const a = leaves[ai];
    const r = rand();
    const b = r < 0.55 ? leaves[Math.floor(ai / 22) * 22 + Math.floor(rand() * 22)] : r < 0.85 ? leaves[Math.floor(rand() * 440)] : leaves[440 + Math.floor(rand() * 60)];
    if (!b || a === b) continue;
    const id = `${a.id}->${b.id}`;
    if (edges.has(id)) continue;
    const conns = 1 + Math.floor(rand() ** 3 * 5000);
    const failed = rand() < 0.08 ? { refused: 1 + Math.floor(rand() * 20), no_answer: Math.floor(rand() * 5) } : {};
    const bytes = Math.floor(conns * (200 + rand() * 50000));
    edges.set(id, { id, source: a.id, target: b.id, connections: conns, failed, bytes_sent: Math.floor(bytes * 0.3), bytes_received: Math.floor(bytes * 0.7), packets: conns * 12,
      rtt_p50_ms: 0.4, rtt_p95_ms: 3.1, retransmissions: Math.floor(rand() * 10), protocols: ['tcp'], top_ports: [{ port: 8080, protocol: 'tcp', connections: conns }],
      first_seen: t0, last_seen: t0 + 3600e3, kfl: `(${a.match.src}) and (${b.match.dst})` });
  }
  const byId = new Map(nodes.map((n) => [n.id, n]));
  for (const e of edges.values()) {
    for (const id of [e.source, e.target]) {
      byId.get(id).connections += e.connections;
      byId.get(id).bytes += e.bytes_sent + e.bytes_received;
    }
  }
  return { level: 'workload', from_ms: t0, to_ms: t0 + 3600e3, nodes, edges: [...edges.values()], folded: null, sql: 'SELECT … (synthetic)' };
}

const MAP = JSON.stringify(syntheticMap());
const T0 = Date.UTC(2026, 10, 26, 9);
const TIMELINE = JSON.stringify({ from_ms: T0, to_ms: T0 + 3600e3, bucket_ms: 30e3, data_from_ms: T0, data_to_ms: T0 + 3600e3 - 1, sql: '',
  buckets: Array.from({ length: 120 }, (_, i) => ({ t: T0 + i * 30e3, connections: 1000 + Math.round(500 * Math.sin(i / 9)), failed: i % 17 === 0 ? 80 : 5 })) });

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };
async function routes(page) {
  await page.route('**/*', async (route) => {
    const u = new URL(route.request().url());
    const json = (body) => route.fulfill({ status: 200, contentType: 'application/json', body });
    if (u.pathname === '/api/v1/map') return json(MAP);
    if (u.pathname === '/api/v1/timeline') return json(TIMELINE);
    if (u.pathname === '/api/v1/fields') return json('{"fields":[],"aliases":["tcp","udp","dns","error"],"helpers":[]}');
    if (u.pathname === '/api/v1/translate') return json('{"sql":"SELECT 1","pretty_sql":"SELECT 1"}');
    if (u.pathname === '/api/v1/sql') return json('[{"n":0}]');
    if (u.pathname === '/api/v1/query') return json('[]');
    const name = u.pathname === '/' ? 'index.html' : path.basename(u.pathname);
    const file = path.join(dist, name);
    if (!fs.existsSync(file)) return route.fulfill({ status: 404, body: 'not found' });
    // (Intercepted responses are handed over decoded; the transfer size is measured from the .gz files.)
    return route.fulfill({ status: 200, contentType: TYPES[path.extname(name)] || 'application/octet-stream', body: fs.readFileSync(file) });
  });
}

// ---- measure ----------------------------------------------------------------------------------
const sizes = ['index.html', 'app.js', 'app.css'].map((f) => [f, fs.statSync(path.join(dist, f + '.gz')).size]);
const transfer = sizes.reduce((a, [, n]) => a + n, 0);

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
const results = [];
for (let i = 0; i < runs; i++) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await routes(page);
  const t0 = Date.now();
  await page.goto('http://podwire.bench/?range=all&level=workload');
  await page.waitForFunction(() => window.podwire && window.podwire.renders > 0, null, { timeout: 60e3, polling: 10 }).catch((e) => {
    throw new Error(`the page never drew the map: ${e.message}\n${errors.join('\n')}`);
  });
  const tLayout = Date.now() - t0;
  const counts = await page.evaluate(() => ({ nodes: window.podwire.cy.nodes().length, edges: window.podwire.cy.edges().length }));
  // A click on a node: it must become the selection (map highlight + table request).
  const target = await page.evaluate(() => {
    const n = window.podwire.cy.nodes('[kind = "workload"]')[0];
    const p = n.renderedPosition();
    const r = document.querySelector('#map').getBoundingClientRect();
    return { id: n.id(), x: r.left + p.x, y: r.top + p.y };
  });
  await page.waitForFunction(() => window.podwire.timings.at(-1).paintedMs != null, null, { polling: 10 });
  const painted = await page.evaluate(() => window.podwire.timings.at(-1));
  // In the page: from the mouse button going down to the selection painted (two frames later).
  await page.evaluate(() => {
    window.__bench = {};
    document.querySelector('#map').addEventListener('mousedown', (e) => { window.__bench.down = performance.now(); }, { capture: true, once: true });
    window.podwire.cy.one('select', () => requestAnimationFrame(() => requestAnimationFrame(() => { window.__bench.painted = performance.now(); })));
  });
  const c0 = Date.now();
  await page.mouse.click(target.x, target.y);
  // (Nodes are small at this zoom: whichever node is under the pointer counts.)
  await page.waitForFunction(() => {
    const sel = window.podwire.state.sel;
    return sel && sel.startsWith('n:') && window.podwire.cy.getElementById(sel.slice(2)).selected() && window.__bench.painted;
  }, null, { polling: 5, timeout: 20e3 }).catch(async (e) => {
    throw new Error(`the click was not handled: ${e.message}; selection ${await page.evaluate(() => window.podwire.state.sel)}, target ${JSON.stringify(target)}`);
  });
  const tClickWall = Date.now() - c0;
  const b = await page.evaluate(() => window.__bench);
  const tClick = Math.round(b.painted - b.down);
  if (i === runs - 1) {
    fs.mkdirSync(path.join(repo, 'target/screenshots'), { recursive: true });
    await page.screenshot({ path: path.join(repo, 'target/screenshots/bench-500-nodes.png') });
  }
  results.push({ total: painted.paintedMs + tClick, wall: tLayout + tClickWall, painted: painted.paintedMs, click: tClick, ...counts, t: painted, errors });
  await page.close();
}
await browser.close();

const med = (k) => results.map((r) => r[k]).sort((a, b) => a - b)[Math.floor(results.length / 2)];
console.log(`page transfer (gzip): ${sizes.map(([f, n]) => `${f} ${(n / 1024).toFixed(1)} KiB`).join(', ')}; total ${(transfer / 1024).toFixed(1)} KiB (${transfer} bytes; target < 600 KB)`);
console.log(`map: ${results[0].nodes} cytoscape nodes (500 + 20 namespace boxes), ${results[0].edges} edges; ${runs} runs`);
for (const [i, r] of results.entries()) {
  console.log(`  run ${i + 1}: navigation → map painted ${r.painted} ms (map fetch ${r.t.fetchMs}, add ${r.t.addMs}, layout ${r.t.layoutMs}, laid out at ${r.t.sinceStartMs}), click → selection painted ${r.click} ms; interactive ${r.total} ms (wall clock seen by the driver, with its polling: ${r.wall} ms)${r.errors.length ? ' ERRORS ' + r.errors.join('; ') : ''}`);
}
console.log(`median time until interactive: ${med('total')} ms (target < 2000 ms)`);
if (results.some((r) => r.errors.length)) process.exit(1);
