#!/usr/bin/env node
// npm "install" script of the published package. With a prebuilt binary that loads here it does
// nothing; otherwise it builds from source with node-gyp (binding.gyp, oneDNN), after checking the
// prerequisites so that a missing one is named instead of surfacing as a compiler error. Without it npm
// would run `node-gyp rebuild` unconditionally (binding.gyp is shipped) and fail on machines with no
// compiler. When npm skips install scripts, lib/native.ts reports the same instructions at load time.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');

// In the development checkout `npm run build` builds the addon (cmake-js): nothing to do on `npm ci`.
if (!root.split(path.sep).includes('node_modules')) process.exit(0);

function loads() {
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(path.join(root, 'dist/lib/native.js'))}).native()`],
    { encoding: 'utf8' });
  return { ok: r.status === 0, why: (r.stderr || '').split('\n').find((l) => /Error/.test(l)) || '' };
}

const first = loads();
if (first.ok) process.exit(0);
console.error(`hgad: no usable prebuilt binary (${first.why.trim()}); building from source with node-gyp`);

function onPath(names) {
  const dirs = (process.env.PATH || '').split(path.delimiter).filter(Boolean);
  return names.find((n) => dirs.some((d) => fs.existsSync(path.join(d, n))));
}
function header(rel) {
  const extra = [process.env.CPATH, process.env.CPLUS_INCLUDE_PATH].filter(Boolean).join(path.delimiter).split(path.delimiter);
  return [...extra, '/usr/include', '/usr/local/include'].filter(Boolean).some((d) => fs.existsSync(path.join(d, rel)));
}
const missing = [];
if (!process.env.CXX && !onPath(['c++', 'g++', 'clang++'])) missing.push('a C++17 compiler with OpenMP (g++)');
if (!onPath(['make'])) missing.push('make');
if (!process.env.PYTHON && !onPath(['python3', 'python'])) missing.push('python3 (node-gyp needs it)');
if (!header('oneapi/dnnl/dnnl.h')) missing.push('oneDNN headers and library (oneapi/dnnl/dnnl.h, libdnnl)');
if (missing.length) {
  console.error(`hgad: cannot build from source, missing: ${missing.join('; ')}.\n` +
    'Debian/Ubuntu: apt-get install g++ make python3 libdnnl-dev, then run `npm rebuild hgad`.');
  process.exit(1);
}
const gyp = process.env.npm_config_node_gyp;
const r = gyp
  ? spawnSync(process.execPath, [gyp, 'rebuild'], { cwd: root, stdio: 'inherit' })
  : spawnSync('npx', ['--yes', 'node-gyp', 'rebuild'], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) {
  console.error('hgad: the source build failed (output above).');
  process.exit(1);
}
const after = loads();
if (!after.ok) {
  console.error(`hgad: built, but the binary does not load: ${after.why}`);
  process.exit(1);
}
