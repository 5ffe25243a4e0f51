// Test harness: checks the prerequisites (never skips), makes the demo store, starts
// `podwire serve` on 127.0.0.1:0, launches headless Chromium, and asks DuckDB for facts.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, '../..');
export const shotDir = path.join(repo, 'target', 'screenshots');

export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

function need(ok, message) {
  if (!ok) throw new Error(`missing prerequisite: ${message}`);
}

/** playwright-core from this folder's node_modules (`npm ci` here). */
export function playwright() {
  const require = createRequire(path.join(here, 'package.json'));
  try {
    return require('playwright-core');
  } catch {
    need(false, `playwright-core is not installed: run \`npm ci\` in ${here}`);
  }
}

export function chromiumPath() {
  const p = process.env.CHROMIUM || '/usr/bin/chromium';
  need(fs.existsSync(p), `no Chromium at ${p}: \`apt-get update && apt-get install -y chromium chromium-driver\` (or set CHROMIUM=/path/to/chromium)`);
  return p;
}

export function podwireBin() {
  const bin = process.env.PODWIRE_BIN;
  need(bin, 'PODWIRE_BIN is not set: build the binary (`cargo build`) and run with PODWIRE_BIN=target/debug/podwire');
  need(fs.existsSync(bin), `PODWIRE_BIN=${bin} does not exist: build it with \`cargo build\``);
  return path.resolve(bin);
}

export function checkDuckdb() {
  const r = spawnSync('python3', ['-c', 'import duckdb'], { encoding: 'utf8' });
  need(r.status === 0, 'python3 with DuckDB is needed for the expected facts: `pip install duckdb`');
}

/** Runs SQL over the store's Parquet with DuckDB; returns one row list per query. */
export function facts(store, queries) {
  const r = spawnSync('python3', [path.join(here, 'facts.py'), store], { input: JSON.stringify(queries), encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`facts.py failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** Makes the demo store in a temporary folder; returns {dir, store}. */
export function demoStore(bin) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'podwire-browser-'));
  const store = path.join(dir, 'store');
  const r = spawnSync(bin, ['demo', '--no-serve', '--store', store], { encoding: 'utf8', timeout: 180e3 });
  if (r.status !== 0) throw new Error(`podwire demo failed (${r.status}): ${r.stderr}\n${r.stdout}`);
  need(fs.existsSync(path.join(store, 'connections')), `podwire demo wrote no connections table under ${store}`);
  return { dir, store };
}

/** Starts `podwire serve`; resolves to {url, proc, stop()} once it prints its address. */
export function serve(bin, store, extra = []) {
  const args = ['serve', '--store', store, '--listen', '127.0.0.1:0', ...extra];
  const dist = process.env.PODWIRE_WEB_DIST;
  if (dist) args.push('--web-root', path.resolve(dist));
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGTERM');
      reject(new Error(`podwire serve printed no address in 60 s\nstdout: ${out}\nstderr: ${err}`));
    }, 60e3);
    proc.stderr.on('data', (d) => { err += d; });
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve({
          url: m[1].replace(/\/$/, ''),
          proc,
          stderr: () => err,
          stop: () => new Promise((r) => {
            if (proc.exitCode != null) return r();
            proc.once('exit', r);
            proc.kill('SIGTERM');
          }),
        });
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`podwire serve exited (${code}) before listening\nstdout: ${out}\nstderr: ${err}`));
    });
  });
}

export async function launch() {
  const { chromium } = playwright();
  return chromium.launch({ executablePath: chromiumPath(), args: CHROMIUM_ARGS, headless: true });
}

/** A page at 1400x900 that fails the test on page errors. */
export async function newPage(browser, errors) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 }, acceptDownloads: true });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()} (${m.location().url}; page ${page.url()})`);
  });
  return page;
}

/** Opens a URL and waits until the page has drawn its map and loaded its table. */
export async function open(page, url) {
  await page.goto(url);
  await page.waitForFunction(() => window.podwire && window.podwire.renders > 0, null, { timeout: 60e3 });
  await settle(page);
}

/** Waits until no map render and no table load is running. */
export async function settle(page) {
  await page.evaluate(() => window.podwire.idle());
}

export async function shot(page, name) {
  fs.mkdirSync(shotDir, { recursive: true });
  const file = path.join(shotDir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** What the map draws: nodes and edges from cytoscape, with the API's numbers beside them. */
export async function drawn(page) {
  return page.evaluate(() => {
    const cy = window.podwire.cy;
    const api = window.podwire.map;
    const apiEdges = new Map(api.edges.map((e) => [e.id, e]));
    return {
      nodes: cy.nodes().map((n) => ({ id: n.id(), kind: n.data('kind'), label: n.data('label'), namespace: n.data('namespace'), parent: n.data('parent') || null, box: !!n.data('box'), visible: n.visible() })),
      edges: cy.edges().map((e) => ({
        id: e.id(),
        source: e.source().id(),
        target: e.target().id(),
        lineStyle: e.style('line-style'),
        label: e.style('label'),
        connections: apiEdges.get(e.id()).connections,
        failed: apiEdges.get(e.id()).failed,
        kfl: apiEdges.get(e.id()).kfl,
      })),
    };
  });
}

/** The table's state: rows shown, and the total the pager reports. */
export async function tableInfo(page, tab = 'conns') {
  return page.evaluate((tab) => {
    const root = document.querySelector(`#tab-${tab}`);
    const total = root.querySelector('.pager .range');
    return {
      rows: root.querySelectorAll('tbody tr.row').length,
      total: total && total.dataset.total !== '' ? Number(total.dataset.total) : null,
      next: !root.querySelector('.pager button.next')?.disabled,
      title: root.querySelector('.rows-title')?.textContent,
    };
  }, tab);
}
