// The fuzz child process (see harness.ts for the protocol): loads one target module, then runs the
// cases the parent asks for, one at a time, reporting each outcome over IPC before starting the next.
'use strict';
require('./register');
const path = require('node:path');
const { HgadError } = require('../../lib/errors');

const [targetPath, optionsJson] = process.argv.slice(2);
const options = JSON.parse(optionsJson);
const CODES = new Set(['INVALID_ARGUMENT', 'NON_FINITE_INPUT', 'MODEL_FILE', 'IO', 'NATIVE', 'ABORTED']);
const MAX_MESSAGE = 400;

let current = -1;

function send(message) {
  return new Promise((resolve) => {
    if (!process.connected) process.exit(0);
    process.send(message, resolve);
  });
}

function classify(e) {
  const message = String((e && e.message) || e).slice(0, MAX_MESSAGE);
  if (e instanceof HgadError && CODES.has(e.code)) return { outcome: 'typed', code: e.code, message };
  const name = e && e.constructor ? e.constructor.name : typeof e;
  return { outcome: 'untyped', code: name, message, stack: String((e && e.stack) || '').slice(0, 2000) };
}

// A promise rejected after its case settled (an orphaned native job, a forgotten await) is a bug of the
// code under test: report it against the case in flight (or the last one) instead of dying silently.
process.on('unhandledRejection', (e) => {
  send({ type: 'stray', index: current, ...classify(e) });
});

async function main() {
  const mod = require(path.resolve(targetPath));
  const target = mod.target || mod.default || mod;
  if (typeof target.generate !== 'function' || typeof target.run !== 'function') {
    throw new Error(`${targetPath} exports no target { generate(seed, index), run(case) }`);
  }
  const ctx = { seed: options.seed, workDir: options.workDir, params: options.params || {} };
  if (typeof target.setup === 'function') await target.setup(ctx);
  process.on('message', async (m) => {
    if (m.type === 'exit') {
      if (typeof target.teardown === 'function') await target.teardown(ctx);
      process.disconnect();
      return;
    }
    if (m.type !== 'run') return;
    current = m.index;
    let c;
    let description = '';
    try {
      c = await target.generate(options.seed, m.index, ctx);
      if (typeof target.describe === 'function') description = String(target.describe(c));
    } catch (e) {
      // A broken generator is a bug of the target, never of the code under test: say so plainly.
      await send({ type: 'result', index: m.index, ms: 0, rss: 0, outcome: 'untyped', code: 'FuzzTargetError',
        message: `generate(${options.seed}, ${m.index}) threw: ${String((e && e.message) || e).slice(0, MAX_MESSAGE)}` });
      return;
    }
    await send({ type: 'start', index: m.index, description });
    const t0 = process.hrtime.bigint();
    let result;
    try {
      await target.run(c, ctx);
      result = { outcome: 'accepted' };
    } catch (e) {
      result = classify(e);
    }
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    await send({ type: 'result', index: m.index, ms, rss: process.memoryUsage().rss, ...result });
  });
  await send({ type: 'ready' });
}

main().catch((e) => {
  process.stderr.write(`fuzz child failed to start: ${(e && e.stack) || e}\n`);
  process.exit(70);
});
