#!/usr/bin/env node
// Builds podwire's dashboard into OUTDIR: app.js (src/app.js and its imports, cytoscape and
// cytoscape-fcose bundled and minified), app.css (minified), index.html, and a gzip (level 9)
// `.gz` beside each. The podwire build (build.rs) calls `node build.cjs OUTDIR` after `npm ci` in
// a copy of this folder; PODWIRE_NODE_MODULES names that node_modules when it is elsewhere.
'use strict';

const fs = require('fs');
const path = require('path');
const zlib = require('zlib');

function fail(msg) {
  process.stderr.write(`web build failed: ${msg}\n`);
  process.exit(1);
}

const outDir = process.argv[2];
if (!outDir) fail('usage: node build.cjs OUTDIR');
const nodeModules = path.resolve(process.env.PODWIRE_NODE_MODULES || path.join(__dirname, 'node_modules'));
if (!fs.existsSync(nodeModules)) {
  fail(`no node_modules at ${nodeModules}: run \`npm ci\` in ${__dirname} or set PODWIRE_NODE_MODULES`);
}
const src = path.join(__dirname, 'src');

let esbuild;
try {
  esbuild = require(require.resolve('esbuild', { paths: [nodeModules] }));
} catch (e) {
  fail(`esbuild not found under ${nodeModules} (${e.message}); run \`npm ci\``);
}

async function main() {
  fs.mkdirSync(outDir, { recursive: true });
  const common = { logLevel: 'error', legalComments: 'none', minify: true, target: ['es2020', 'chrome100', 'firefox100', 'safari15'] };
  await esbuild.build({
    ...common,
    entryPoints: [path.join(src, 'app.js')],
    bundle: true,
    format: 'esm',
    outfile: path.join(outDir, 'app.js'),
    nodePaths: [nodeModules],
    // cytoscape's UMD build checks `process.env.NODE_ENV` style guards in a few places.
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  await esbuild.build({
    ...common,
    entryPoints: [path.join(src, 'app.css')],
    bundle: true,
    loader: { '.css': 'css' },
    outfile: path.join(outDir, 'app.css'),
  });
  fs.copyFileSync(path.join(src, 'index.html'), path.join(outDir, 'index.html'));

  let total = 0;
  for (const name of ['index.html', 'app.js', 'app.css']) {
    const file = path.join(outDir, name);
    const raw = fs.readFileSync(file);
    const gz = zlib.gzipSync(raw, { level: 9 });
    fs.writeFileSync(file + '.gz', gz);
    total += gz.length;
    console.log(`${name.padEnd(11)} ${String(raw.length).padStart(9)} bytes, gzip ${String(gz.length).padStart(8)} bytes`);
  }
  console.log(`total gzip  ${String(total).padStart(9)} bytes (${outDir})`);
}

main().catch((e) => fail(e && e.message ? e.message : String(e)));
