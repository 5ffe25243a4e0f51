// The dashboard in headless Chromium against the real `podwire serve` on the demo store.
//   PODWIRE_BIN=target/debug/podwire [PODWIRE_WEB_DIST=dir] node --test tests/browser/
// Expected nodes, edges and row counts come from DuckDB over the store's Parquet (facts.py).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {
  podwireBin, chromiumPath, checkDuckdb, playwright, demoStore, serve, launch, newPage, open, settle, shot, drawn, tableInfo, facts,
} from './harness.mjs';

let bin;
let store;
let tmp;
let server;
let browser;
const errors = [];
const screenshots = [];

before(async () => {
  // Every prerequisite is checked first, and each failure says how to get it.
  bin = podwireBin();
  chromiumPath();
  playwright();
  checkDuckdb();
  ({ dir: tmp, store } = demoStore(bin));
  server = await serve(bin, store);
  browser = await launch();
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  if (screenshots.length) console.log(`screenshots:\n  ${screenshots.join('\n  ')}`);
});

const url = (params) => `${server.url}/?${new URLSearchParams({ range: 'all', ...params })}`;
const q = (s) => s.replace(/'/g, "''");

/** The map id a store endpoint gets at namespace level (ns:<ns> or the id's tail for outsiders). */
function nsKey(ns, name, ip) {
  return ns ? `ns:${ns}` : `*:${name || ip}`;
}

/** Drawn node id → the same key form; outsiders compared by their name/IP only. */
function drawnKey(id) {
  return id.startsWith('ns:') ? id : `*:${id.slice(id.indexOf(':') + 1)}`;
}

function edgeFacts(where) {
  const [rows] = facts(store, [
    `SELECT src_namespace, src_name, src_ip, dst_namespace, dst_name, dst_ip,
            count(DISTINCT conn_id) AS conns,
            count(DISTINCT conn_id) FILTER (WHERE is_final AND outcome NOT IN ('closed', 'open', 'answered')) AS failed
       FROM connections WHERE ${where} GROUP BY ALL`,
  ]);
  const edges = new Map();
  for (const r of rows) {
    const key = `${nsKey(r.src_namespace, r.src_name, r.src_ip)} -> ${nsKey(r.dst_namespace, r.dst_name, r.dst_ip)}`;
    const e = edges.get(key) || { conns: 0, failed: 0 };
    e.conns += Number(r.conns);
    e.failed += Number(r.failed);
    edges.set(key, e);
  }
  return edges;
}

function drawnEdges(d) {
  const m = new Map();
  for (const e of d.edges) {
    m.set(`${drawnKey(e.source)} -> ${drawnKey(e.target)}`, e);
  }
  return m;
}

function assertNamespaceMap(d, expected, what) {
  const got = drawnEdges(d);
  assert.deepEqual([...got.keys()].sort(), [...expected.keys()].sort(), `${what}: drawn edges vs DuckDB`);
  for (const [k, e] of expected) {
    const g = got.get(k);
    assert.equal(g.connections, e.conns, `${what}: connections of ${k}`);
    const failed = Object.values(g.failed || {}).reduce((a, b) => a + b, 0);
    assert.equal(failed, e.failed, `${what}: failed connections of ${k}`);
    assert.equal(g.lineStyle, e.failed ? 'dashed' : 'solid', `${what}: failure style of ${k}`);
    if (e.failed) assert.match(String(g.label), new RegExp(`^${e.failed} failed`), `${what}: failure label of ${k}`);
  }
  // Every drawn node is an end of some edge, or a namespace box.
  const ends = new Set(d.edges.flatMap((e) => [e.source, e.target]));
  for (const n of d.nodes) assert.ok(ends.has(n.id) || n.box, `${what}: stray node ${n.id}`);
}

test('the whole demo at namespace level: every namespace pair, externals marked apart', async () => {
  const page = await newPage(browser, errors);
  await open(page, url({ level: 'namespace' }));
  const d = await drawn(page);
  assertNamespaceMap(d, edgeFacts('TRUE'), 'no filter');
  const [outside] = facts(store, ["SELECT DISTINCT coalesce(nullif(dst_name, ''), dst_ip) AS who FROM connections WHERE dst_namespace = '' AND dst_node = ''"]);
  for (const { who } of outside) {
    const n = d.nodes.find((x) => drawnKey(x.id) === `*:${who}`);
    assert.ok(n, `external ${who} is on the map`);
    assert.ok(['external', 'unknown'].includes(n.kind), `${who} is drawn as an outsider, not ${n.kind}`);
    const shape = await page.evaluate((id) => window.podwire.cy.getElementById(id).style('shape'), n.id);
    assert.notEqual(shape, 'round-rectangle', 'outsiders look different from namespaces');
  }
  screenshots.push(await shot(page, 'map-namespaces'));

  // A narrower filter keeps every remaining node where it was.
  const positions = () => page.evaluate(() => Object.fromEntries(window.podwire.cy.nodes().map((n) => [n.id(), n.position()])));
  const beforePos = await positions();
  await page.fill('#kfl', 'dst.namespace == ""');
  await page.press('#kfl', 'Escape');
  await page.click('#apply');
  await settle(page);
  const afterPos = await positions();
  assert.ok(Object.keys(afterPos).length < Object.keys(beforePos).length, 'the filter drops nodes');
  for (const [id, p] of Object.entries(afterPos)) {
    assert.ok(beforePos[id], `${id} was on the map before`);
    assert.ok(Math.abs(p.x - beforePos[id].x) < 0.5 && Math.abs(p.y - beforePos[id].y) < 0.5, `${id} stayed in place`);
  }
  // Back (history) restores the unfiltered view.
  await page.goBack();
  await settle(page);
  assert.equal(await page.evaluate(() => window.podwire.state.q), '');
  assert.equal(await page.inputValue('#kfl'), '');
  assert.equal((await drawn(page)).edges.length, d.edges.length, 'back: the unfiltered map again');
  await page.close();
});

test('seed filter dst.namespace == "": who talks to the outside', async () => {
  const page = await newPage(browser, errors);
  await open(page, url({ q: 'dst.namespace == ""', level: 'namespace' }));
  const d = await drawn(page);
  const expected = edgeFacts("dst_namespace = ''");
  assert.ok(expected.size >= 2, 'the demo has traffic to two outside addresses');
  assertNamespaceMap(d, expected, 'dst.namespace == ""');
  screenshots.push(await shot(page, 'filter-outside'));
  await page.close();
});

test('noise toggles add their clauses to the query: DNS to kube-system, node/host traffic', async () => {
  const page = await newPage(browser, errors);
  await open(page, url({ level: 'namespace' }));
  await page.check('#hide-dns');
  await settle(page);
  assert.match(page.url(), /hide=dns/);
  assertNamespaceMap(await drawn(page), edgeFacts("NOT (dst_namespace = 'kube-system' AND dst_port = 53)"), 'hide DNS');
  await page.check('#hide-node');
  await settle(page);
  assertNamespaceMap(await drawn(page), edgeFacts(
    "NOT (dst_namespace = 'kube-system' AND dst_port = 53) AND NOT (src_namespace = '' AND src_node <> '') AND NOT (dst_namespace = '' AND dst_node <> '')",
  ), 'hide DNS and node traffic');
  screenshots.push(await shot(page, 'noise-hidden'));
  await page.close();
});

test('seed filter dst.name == "api.example.com": one external name', async () => {
  const page = await newPage(browser, errors);
  await open(page, url({ q: 'dst.name == "api.example.com"', level: 'namespace' }));
  const d = await drawn(page);
  const expected = edgeFacts("dst_name = 'api.example.com'");
  assert.equal(expected.size, 1);
  assertNamespaceMap(d, expected, 'dst.name');
  const ext = d.nodes.find((n) => n.id.endsWith('api.example.com'));
  assert.equal(ext.kind, 'external');
  screenshots.push(await shot(page, 'filter-external-name'));
  await page.close();
});

test('two-namespace filter at workload level: namespace boxes with their workloads; an edge click lists exactly its rows', async () => {
  const page = await newPage(browser, errors);
  const filter = 'src.namespace == "shop" and dst.namespace == "shop"';
  await open(page, url({ q: filter, level: 'workload' }));
  const d = await drawn(page);
  const [pairs, rowsPerPair] = facts(store, [
    `SELECT src_workload, dst_workload, count(DISTINCT conn_id) AS conns FROM connections
      WHERE src_namespace = 'shop' AND dst_namespace = 'shop' GROUP BY ALL ORDER BY ALL`,
    `SELECT src_workload, dst_workload, count(*) AS n FROM connections
      WHERE src_namespace = 'shop' AND dst_namespace = 'shop' GROUP BY ALL ORDER BY ALL`,
  ]);
  const want = pairs.map((r) => `wl:shop/${r.src_workload} -> wl:shop/${r.dst_workload} ${r.conns}`).sort();
  const got = d.edges.map((e) => `${e.source} -> ${e.target} ${e.connections}`).sort();
  assert.deepEqual(got, want, 'workload edges and their connection counts');
  const box = d.nodes.find((n) => n.id === 'ns:shop');
  assert.ok(box && box.box, 'shop is drawn as a box');
  for (const n of d.nodes.filter((x) => x.id.startsWith('wl:'))) assert.equal(n.parent, 'ns:shop', `${n.id} sits in the shop box`);

  // Click the frontend → web edge on the canvas.
  const edge = d.edges.find((e) => e.source === 'wl:shop/frontend' && e.target === 'wl:shop/web');
  assert.ok(edge, 'frontend → web is drawn');
  const pos = await page.evaluate((id) => {
    const e = window.podwire.cy.getElementById(id);
    const m = e.renderedMidpoint();
    const r = document.querySelector('#map').getBoundingClientRect();
    return { x: r.left + m.x, y: r.top + m.y };
  }, edge.id);
  await page.mouse.click(pos.x, pos.y);
  await settle(page);
  assert.equal(await page.evaluate(() => window.podwire.state.sel), `e:${edge.id}`, 'the click selected the edge');
  const want2 = Number(rowsPerPair.find((r) => r.src_workload === 'frontend' && r.dst_workload === 'web').n);
  const t = await tableInfo(page);
  assert.equal(t.rows, want2, 'rows listed for the edge = DuckDB row count');
  assert.equal(t.total, want2, 'the pager total = DuckDB row count');
  assert.ok(want2 >= edge.connections, 'rows include interim rows, so at least the edge connections');
  // Expanding a row shows the whole record.
  await page.click('#tab-conns tbody tr.row >> nth=0');
  const rec = await page.textContent('#tab-conns tr.detail');
  for (const k of ['outcome', 'reset_by', 'src_flags', 'handshake_rtt_us', 'icmp_errors', 'dst_dns_name', 'node']) assert.ok(rec.includes(k), `the record shows ${k}`);
  await page.waitForSelector('#tab-conns tr.detail .packets-slot', { state: 'detached', timeout: 30e3 });
  // …and to its packets, from the packets table (the demo store keeps them).
  const connId = await page.evaluate(() => {
    const dts = [...document.querySelectorAll('#tab-conns tr.detail dl.record dt')];
    return dts.find((d) => d.textContent === 'conn_id').nextElementSibling.textContent;
  });
  assert.match(connId, /^\d+$/, 'conn_id shown exactly (as text: it exceeds 2^53)');
  const [[{ n: nPackets }]] = facts(store, [`SELECT count(*) AS n FROM packets WHERE conn_id = ${connId}`]);
  assert.ok(Number(nPackets) > 0, 'the demo store has packets of this connection');
  assert.equal(await page.locator('#tab-conns tr.detail table.packets tbody tr').count(), Number(nPackets), 'every packet of the connection listed');
  screenshots.push(await shot(page, 'edge-selected'));

  // "why?" on the failing edge: one verdict per kind of failure DuckDB finds on its final rows.
  await page.click('#why-button');
  await page.waitForSelector('#why .verdict', { timeout: 30e3 });
  const [failures] = facts(store, [`SELECT DISTINCT CASE WHEN outcome = 'aborted' THEN 'no_answer' ELSE outcome END AS o
    FROM connections WHERE is_final AND src_workload = 'frontend' AND dst_workload = 'web'
    AND outcome IN ('refused', 'no_answer', 'aborted', 'reset', 'unreachable')`]);
  const badges = await page.$$eval('#why .verdict .badge', (els) => els.map((e) => e.textContent.replace(' ', '_')));
  assert.deepEqual(badges.sort(), failures.map((r) => r.o).sort(), 'a verdict per kind of failure on the edge');
  assert.ok(failures.length >= 2, 'the demo edge fails in several ways');
  const whyText = await page.textContent('#why');
  assert.match(whyText, /nothing was listening/, 'the refused port explained');
  screenshots.push(await shot(page, 'why'));

  // Reloading the URL restores the same view.
  const link = page.url();
  const before = { d: await drawn(page), t, state: await page.evaluate(() => window.podwire.state) };
  const page2 = await newPage(browser, errors);
  await open(page2, link);
  const after2 = { d: await drawn(page2), t: await tableInfo(page2), state: await page2.evaluate(() => window.podwire.state) };
  assert.deepEqual(after2.state, before.state, 'state restored from the URL');
  assert.deepEqual(after2.d.nodes.map((n) => n.id).sort(), before.d.nodes.map((n) => n.id).sort());
  assert.deepEqual(after2.d.edges.map((e) => e.id).sort(), before.d.edges.map((e) => e.id).sort());
  assert.equal(after2.t.total, want2, 'the reloaded page lists the same rows');
  const positionsOf = (pg) => pg.evaluate(() => Object.fromEntries(window.podwire.cy.nodes().map((n) => [n.id(), n.position()])));
  const [p1, p2] = [await positionsOf(page), await positionsOf(page2)];
  for (const [id, p] of Object.entries(p1)) {
    assert.ok(Math.abs(p.x - p2[id].x) < 1 && Math.abs(p.y - p2[id].y) < 1, `${id} is drawn in the same place after the reload`);
  }
  assert.equal(await page2.evaluate(() => window.podwire.cy.$(':selected').id()), edge.id, 'the edge is selected again');
  assert.equal(await page2.inputValue('#kfl'), filter);
  screenshots.push(await shot(page2, 'reloaded'));
  await page2.close();
  await page.close();
});

test('KFL2: the dialect switch, the seed filter in CEL with the noise toggle on top, its completion and a typed error', async () => {
  const own = []; // the 400 of the bad filter is logged by the browser, as it should be
  const page = await newPage(browser, own);
  await open(page, url({ q: 'dst.namespace == "" && tcp', dialect: 'kfl2', level: 'namespace', hide: 'dns' }));
  assert.equal(await page.inputValue('#dialect'), 'kfl2');
  // KFL2's filter and the dashboard's KFL1 noise clause, ANDed by the server.
  assertNamespaceMap(await drawn(page), edgeFacts(
    "dst_namespace = '' AND protocol = 'tcp' AND NOT (dst_namespace = 'kube-system' AND dst_port = 53)"), 'KFL2 + hide DNS');
  const [[{ n }]] = facts(store, ["SELECT count(*) AS n FROM connections WHERE dst_namespace = '' AND protocol = 'tcp'"]);
  const t = await tableInfo(page);
  assert.equal(t.total, Number(n), 'the rows of the KFL2 filter = DuckDB');
  screenshots.push(await shot(page, 'kfl2'));
  // Completion offers KFL2's variables.
  await page.fill('#kfl', '');
  await page.keyboard.type('conn_s');
  await page.waitForSelector('.completions.open');
  const offered = await page.$$eval('.completions li .c-word', (els) => els.map((e) => e.textContent));
  assert.ok(offered.includes('conn_state'), `completions: ${offered}`);
  await page.keyboard.press('Escape');
  // CEL is typed: a string for a port is an error at its column.
  const bad = 'dst.port == "80"';
  await page.fill('#kfl', bad);
  await page.press('#kfl', 'Escape');
  await page.click('#apply');
  await settle(page);
  await page.waitForSelector('#kfl-error.show');
  const err = await page.evaluate(() => ({ col: document.querySelector('#kfl-error').dataset.col, text: document.querySelector('#kfl-error').textContent }));
  assert.equal(err.col, String(bad.indexOf('dst.port') + 1), 'column of the comparison');
  assert.match(err.text, /dst\.port == 80/, 'the hint writes the number');
  // Back to KFL1: the same text is now read as KFL1 (where "80" is the number 80).
  await page.selectOption('#dialect', 'kfl1');
  await settle(page);
  assert.doesNotMatch(page.url(), /dialect=/);
  assert.equal(await page.locator('#kfl-error.show').count(), 0, 'no error in KFL1');
  assert.deepEqual(own.filter((e) => !/400 \(Bad Request\)/.test(e)), [], 'no other page errors');
  await page.close();
});

test('an invalid filter shows its error at the right column, with the hint', async () => {
  const own = []; // the 400 of the bad filter is logged by the browser, as it should be
  const page = await newPage(browser, own);
  await open(page, url({}));
  // Completion from /api/v1/fields: field names and aliases.
  await page.click('#kfl');
  await page.keyboard.type('dst.nam');
  await page.waitForSelector('.completions.open');
  const offered = await page.$$eval('.completions li .c-word', (els) => els.map((e) => e.textContent));
  assert.ok(offered.includes('dst.name') && offered.includes('dst.namespace'), `completions: ${offered}`);
  await page.keyboard.press('Escape');
  await page.fill('#kfl', '');
  await page.keyboard.type('tc');
  await page.waitForSelector('.completions.open');
  assert.ok((await page.$$eval('.completions li .c-word', (els) => els.map((e) => e.textContent))).includes('tcp'), 'aliases are offered');
  await page.keyboard.press('Escape');
  const bad = 'tcp and dst.nam == "x"';
  await page.fill('#kfl', bad);
  await page.press('#kfl', 'Escape');
  await page.click('#apply');
  await settle(page);
  await page.waitForSelector('#kfl-error.show');
  const err = await page.evaluate(() => {
    const e = document.querySelector('#kfl-error');
    const m = document.querySelector('.kfl-err-span');
    return { line: e.dataset.line, col: e.dataset.col, text: e.textContent, mark: m && m.textContent, start: m && m.dataset.start };
  });
  assert.equal(err.line, '1');
  assert.equal(err.col, String(bad.indexOf('dst.nam') + 1), 'column of the unknown field');
  assert.equal(Number(err.start), bad.indexOf('dst.nam'), 'the marked span starts at the field');
  assert.ok(err.mark.startsWith('dst.nam'), `marked: ${err.mark}`);
  assert.match(err.text, /line 1, column 9/);
  assert.match(err.text, /dst\.name/, 'the hint names the right field');
  screenshots.push(await shot(page, 'bad-filter'));
  assert.deepEqual(own.filter((e) => !/400 \(Bad Request\)/.test(e)), [], 'no other page errors');
  await page.close();
});

test('brushing the histogram narrows the window and the rows', async () => {
  const page = await newPage(browser, errors);
  await open(page, url({ level: 'namespace' }));
  const all = await tableInfo(page);
  const [[{ n: total }]] = facts(store, ['SELECT count(*) AS n FROM connections']);
  assert.equal(all.total, Number(total), 'all connection rows of the store before brushing');
  const box = await page.locator('#timeline svg.histogram').boundingBox();
  // The first 35 % of the history (the scene's first steps; the unanswered SYNs come later).
  const y = box.y + box.height / 2;
  await page.mouse.move(box.x + 44 + 2, y);
  await page.mouse.down();
  await page.mouse.move(box.x + 44 + (box.width - 54) * 0.2, y, { steps: 5 });
  await page.mouse.move(box.x + 44 + (box.width - 54) * 0.35, y, { steps: 5 });
  await page.mouse.up();
  await settle(page);
  const s = await page.evaluate(() => window.podwire.state);
  assert.equal(s.range, null, 'a brushed window');
  assert.ok(s.from < s.to);
  assert.match(page.url(), new RegExp(`from=${s.from}&to=${s.to}`));
  const [[{ n }]] = facts(store, [`SELECT count(*) AS n FROM connections WHERE epoch_us(start_ts) >= ${s.from * 1000} AND epoch_us(start_ts) < ${s.to * 1000}`]);
  const t = await tableInfo(page);
  assert.equal(t.total, Number(n), 'rows in the brushed window = DuckDB count');
  assert.ok(t.total > 0 && t.total < all.total, `fewer rows (${t.total} of ${all.total})`);
  screenshots.push(await shot(page, 'brushed'));
  // Export the rows of the brushed window: CSV (header + one line a row), JSON lines, Parquet.
  const save = async (format) => {
    const [dl] = await Promise.all([page.waitForEvent('download', { timeout: 30e3 }), page.click(`#export [data-format="${format}"]`)]);
    return fs.readFileSync(await dl.path());
  };
  const csv = save('csv').then((b) => b.toString('utf8').trim().split('\n'));
  const lines = await csv;
  assert.equal(lines.length, t.total + 1, 'CSV: a header and the window rows');
  assert.match(lines[0], /start_ts/);
  const jsonl = (await save('ndjson')).toString('utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(jsonl.length, t.total, 'JSON lines: the window rows');
  const pq = await save('parquet');
  assert.equal(pq.subarray(0, 4).toString(), 'PAR1', 'Parquet export starts with PAR1');
  assert.equal(pq.subarray(pq.length - 4).toString(), 'PAR1', 'and ends with it');
  // Back restores the whole window.
  await page.goBack();
  await settle(page);
  assert.equal(await page.evaluate(() => window.podwire.state.range), 'all');
  assert.equal((await tableInfo(page)).total, all.total);
  await page.close();
});

test('namespace double-click opens it; DNS and capture-health tabs; no page errors', async () => {
  const page = await newPage(browser, errors);
  await open(page, url({ level: 'namespace' }));
  const pos = await page.evaluate(() => {
    const m = window.podwire.cy.getElementById('ns:shop').renderedPosition();
    const r = document.querySelector('#map').getBoundingClientRect();
    return { x: r.left + m.x, y: r.top + m.y };
  });
  await page.mouse.dblclick(pos.x, pos.y);
  await settle(page);
  const d = await drawn(page);
  assert.deepEqual(await page.evaluate(() => window.podwire.state.expand), ['shop']);
  assert.ok(d.nodes.find((n) => n.id === 'ns:shop' && n.box), 'shop became a box');
  const [wls] = facts(store, ["SELECT DISTINCT src_workload AS w FROM connections WHERE src_namespace = 'shop' UNION SELECT DISTINCT dst_workload FROM connections WHERE dst_namespace = 'shop' AND dst_workload <> ''"]);
  for (const { w } of wls) assert.ok(d.nodes.find((n) => n.id === `wl:shop/${w}` && n.parent === 'ns:shop'), `workload ${w} in the shop box`);
  assert.ok(d.nodes.find((n) => n.id === 'ns:batch' && !n.box), 'batch stays one node');
  screenshots.push(await shot(page, 'namespace-opened'));

  await page.click('.tabs [data-tab="dns"]');
  await settle(page);
  // The double-click also selected the shop box: its DNS transactions, then all of them.
  assert.equal(await page.evaluate(() => window.podwire.state.sel), 'n:ns:shop');
  const [[{ n: shopDns }], [{ n: dnsRows }]] = facts(store, [
    "SELECT count(*) AS n FROM dns WHERE src_namespace = 'shop' OR dst_namespace = 'shop'",
    'SELECT count(*) AS n FROM dns',
  ]);
  assert.equal((await tableInfo(page, 'dns')).rows, Number(shopDns), "the shop box's DNS transactions");
  await page.click('#selection button:has-text("clear")');
  await settle(page);
  const t = await tableInfo(page, 'dns');
  assert.equal(t.rows, Number(dnsRows), 'every DNS transaction');
  screenshots.push(await shot(page, 'dns-tab'));

  await page.click('.tabs [data-tab="health"]');
  await settle(page);
  const health = await page.textContent('#tab-health');
  assert.match(health, /packets read/);
  assert.equal(await page.locator('#tab-health .error-cell').count(), 0, 'capture_stats read without an error');
  screenshots.push(await shot(page, 'health-tab'));

  // Insights of the window: a failing item per (port, protocol, kind of failure) DuckDB finds.
  await page.click('.tabs [data-tab="insights"]');
  await page.waitForSelector('#tab-insights .insight', { timeout: 30e3 });
  const [[{ n: failingKinds }]] = facts(store, [`SELECT count(DISTINCT (dst_port, protocol,
      CASE WHEN outcome = 'aborted' THEN 'no_answer' ELSE outcome END)) AS n FROM connections
    WHERE is_final AND outcome IN ('refused', 'no_answer', 'aborted', 'reset', 'unreachable')`]);
  assert.equal(await page.locator('#tab-insights .insight.failing').count(), Number(failingKinds), 'a failing item per kind of failure');
  assert.ok(await page.locator('#tab-insights .insight.new_external').count() > 0, 'outside destinations listed');
  screenshots.push(await shot(page, 'insights-tab'));
  await page.close();
  assert.deepEqual(errors, [], 'no page errors');
});

test('a filter that finds nothing: "why nothing?" names the typo and its fix lists the rows', async () => {
  const [[{ pod }]] = facts(store, [`SELECT dst_pod AS pod FROM connections WHERE dst_pod <> '' GROUP BY dst_pod ORDER BY count(*) DESC LIMIT 1`]);
  const typo = `${pod.slice(0, 1)}q${pod.slice(1)}`;
  const page = await newPage(browser, errors);
  await open(page, url({ q: `dst.pod == "${typo}" and protocol.layer4 == "tcp"`, level: 'namespace' }));
  assert.equal((await tableInfo(page)).rows, 0, 'the misspelt pod finds nothing');
  await page.click('#why-not-button');
  await page.waitForSelector('#why-not .verdict', { timeout: 30e3 });
  const reasons = await page.$$eval('#why-not .verdict', (els) => els.map((e) => e.className));
  assert.ok(reasons.some((c) => c.includes('did_you_mean')), `did_you_mean among ${reasons}`);
  const text = await page.textContent('#why-not .verdict.did_you_mean');
  assert.ok(text.includes(`"${pod}"`), `the close name ${pod} offered: ${text}`);
  screenshots.push(await shot(page, 'why-not'));
  // "try" puts the suggestion in place of the misspelt test, keeping the rest of the filter.
  await page.click('#why-not .verdict.did_you_mean button');
  await settle(page);
  const q = await page.evaluate(() => window.podwire.state.q);
  assert.ok(q.includes(`dst.pod == "${pod}"`) && q.includes('protocol.layer4 == "tcp"') && !q.includes(typo), `the filter fixed: ${q}`);
  const names = [...q.matchAll(/dst\.pod == "([^"]*)"/g)].map((m) => `'${m[1].replace(/'/g, "''")}'`);
  const [[{ n }]] = facts(store, [`SELECT count(*) AS n FROM connections WHERE dst_pod IN (${names.join(', ')}) AND protocol = 'tcp'`]);
  const t = await tableInfo(page);
  assert.ok(Number(n) > 0, 'DuckDB finds rows for the fixed filter');
  assert.equal(t.total, Number(n), 'the fixed filter lists the rows DuckDB counts');
  await page.close();
});

test('with a token the page asks for it once, keeps it for the tab, and sends it on every call', async () => {
  const token = 'browser-test-token-7f3a';
  const guarded = await serve(bin, store, ['--token', token]);
  try {
    const page = await newPage(browser, []);
    const seen = [];
    page.on('request', (r) => {
      if (new URL(r.url()).pathname.startsWith('/api/')) seen.push(r.headers().authorization || '');
    });
    await page.goto(`${guarded.url}/?range=all`);
    await page.waitForSelector('#token-dialog', { timeout: 30e3 });
    await page.fill('#token-input', token);
    await page.click('#token-dialog button');
    await page.waitForFunction(() => window.podwire.renders > 0, null, { timeout: 60e3 });
    await settle(page);
    assert.ok((await drawn(page)).edges.length > 0, 'the map is drawn after the token');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('podwire.token')), token);
    await page.reload();
    await page.waitForFunction(() => window.podwire && window.podwire.renders > 0, null, { timeout: 60e3 });
    await settle(page);
    assert.equal(await page.locator('#token-dialog').count(), 0, 'not asked again in the same tab');
    const after = seen.slice(seen.lastIndexOf('') + 1);
    assert.ok(after.length > 3 && after.every((a) => a === `Bearer ${token}`), 'every API call after the dialog carries the token');
    await page.close();
  } finally {
    await guarded.stop();
  }
});
