// Run by scripts/test-install.sh inside the directory hgad was installed into (never from the repo):
// loads the installed package the way a user does and trains and scores a small model with it, then
// checks which prebuilt binary is chosen (the CPU one or the CUDA variant, HGAD_VARIANT) in child
// processes. HGAD_EXPECT_CUDA_VARIANT=1: the package must carry the CUDA variant.
// Prints one `ok <check>` or `FAIL <check>: why` line per check.
'use strict';
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const pkg = path.dirname(require.resolve('hgad/package.json'));
const cudaVariant = path.join('variants', 'cuda', 'prebuilds', 'linux-x64', 'hgad.node');
const cpuBinary = path.join('prebuilds', 'linux-x64', 'hgad.node');
const driver = fs.existsSync('/proc/driver/nvidia/version');
const hasVariant = process.env.HGAD_EXPECT_CUDA_VARIANT === '1';

const checks = [];
const check = (name, fn) => checks.push([name, fn]);

check('require', () => {
  const hgad = require('hgad');
  assert.equal(typeof hgad.HgadModel, 'function');
  assert.equal(typeof hgad.HgadError, 'function');
});

check('import', async () => {
  const hgad = await import('hgad');
  assert.equal(typeof hgad.HgadModel, 'function');
  assert.equal(hgad.HgadModel, require('hgad').HgadModel, 'ESM and CommonJS give the same class');
});

check('prebuilt binary', () => {
  const pkg = path.dirname(require.resolve('hgad/package.json'));
  const file = require('node-gyp-build').resolve(pkg);
  assert.equal(path.relative(pkg, file), path.join('prebuilds', 'linux-x64', 'hgad.node'));
});

// Two classes of 16-channel features, N(+1, 1) and N(-1, 1) per channel; anomalies are N(0, 3). After
// training, anomalous vectors must score a lower log-likelihood than held-out normal ones.
function features(batch, hw, C, mean, sd, seed) {
  let s = seed >>> 0;
  const uniform = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 4294967296;
  const data = new Float32Array(batch * hw * hw * C);
  for (let i = 0; i < data.length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(uniform())), t = 2 * Math.PI * uniform();
    data[i] = mean[Math.floor(i / (hw * hw * C)) % mean.length] + sd * r * Math.cos(t);
    data[i + 1] = mean[Math.floor((i + 1) / (hw * hw * C)) % mean.length] + sd * r * Math.sin(t);
  }
  return { data, batch, height: hw, width: hw, channels: C };
}

// Trains a small model and scores normal and anomalous features; returns the numbers it checked.
async function trainAndScore(device) {
  const { HgadModel } = require('hgad');
  const C = 16, hw = 4, batch = 4;
  const model = HgadModel.create({ levels: [{ channels: C }], classes: ['a', 'b'], couplingLayers: 2,
    centersPerClass: 2, posEmbedDim: 8, seed: 1, threads: 2, device });
  const labels = Int32Array.from([0, 1, 0, 1]);
  let first, last;
  for (let step = 0; step < 60; step++) {
    const losses = await model.trainStep(0, features(batch, hw, C, [1, -1], 1, step + 1), labels, { phase: 1, lr: 2e-3 });
    assert.ok(Number.isFinite(losses.loss), `finite loss at step ${step}`);
    if (step === 0) first = losses.loss;
    last = losses.loss;
  }
  assert.ok(last < first, `loss fell (${first} -> ${last})`);
  const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length;
  const normal = await model.score(0, features(batch, hw, C, [1, -1], 1, 999), labels);
  const anomalous = await model.score(0, features(batch, hw, C, [0, 0], 3, 998), labels);
  const n = mean(normal.logp), a = mean(anomalous.logp);
  assert.ok(n > a + 0.5, `normal logp ${n} above anomalous ${a}`);
  return `loss ${first.toFixed(3)} -> ${last.toFixed(3)}; mean logp normal ${n.toFixed(3)}, anomalous ${a.toFixed(3)}`;
}

check('train and score', async () => {
  console.log(`  ${await trainAndScore(undefined)}`);
});

// The hgad.node files this process has mapped, relative to the package.
function loadedBinaries() {
  const lines = fs.readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.endsWith('hgad.node'));
  return [...new Set(lines.map((l) => path.relative(pkg, l.slice(l.indexOf('/')))))];
}

// Child mode: loads hgad under the environment given, uses it, and prints what happened as JSON.
async function child() {
  const out = {};
  try {
    const hgad = require('hgad');
    out.cudaInfo = hgad.cudaInfo();
    const esm = await import('hgad');
    out.sameClass = esm.HgadModel === hgad.HgadModel;
    out.trained = await trainAndScore('cpu');
    try {
      hgad.HgadModel.create({ levels: [{ channels: 8 }], classes: ['a'], device: 'cuda' });
      out.cudaError = null;
    } catch (e) {
      out.cudaError = { name: e.constructor.name, code: e.code, parameter: e.parameter, message: e.message };
    }
  } catch (e) {
    out.error = { name: e.constructor.name, code: e.code, parameter: e.parameter, message: e.message };
  }
  out.binaries = loadedBinaries();
  process.stdout.write(JSON.stringify(out));
}

function runChild(variant) {
  const env = { ...process.env };
  if (variant === undefined) delete env.HGAD_VARIANT;
  else env.HGAD_VARIANT = variant;
  const r = spawnSync(process.execPath, [__filename, '--child'], { env, encoding: 'utf8', timeout: 60000 });
  assert.equal(r.status, 0, `child exited ${r.status}: ${r.stderr}`);
  return { out: JSON.parse(r.stdout), stderr: r.stderr };
}

// Asked for 'cuda', a model must fail with a typed error naming config.device (no usable device here).
function assertCudaRefused(out) {
  assert.ok(out.cudaError, `device 'cuda' was accepted: ${JSON.stringify(out)}`);
  assert.equal(out.cudaError.name, 'HgadError');
  assert.equal(out.cudaError.code, 'INVALID_ARGUMENT');
  assert.equal(out.cudaError.parameter, 'config.device');
  assert.match(out.cudaError.message, /config\.device is 'cuda' but CUDA is unavailable: ./);
}

check('the CUDA variant is there exactly when it was built', () => {
  const present = fs.existsSync(path.join(pkg, cudaVariant)) && fs.existsSync(path.join(pkg, path.dirname(cudaVariant), 'libgomp.so.1'));
  assert.equal(present, hasVariant,
    `variant ${present ? 'present' : 'absent'}, HGAD_EXPECT_CUDA_VARIANT=${process.env.HGAD_EXPECT_CUDA_VARIANT}`);
});

check(`default choice: ${!hasVariant ? 'the CPU binary, silently (no variant)'
  : driver ? 'the CUDA variant, silently' : 'one notice line, then the CPU binary'}`, () => {
  const { out, stderr } = runChild(undefined);
  assert.equal(out.error, undefined, JSON.stringify(out.error));
  const lines = stderr.split('\n').filter((l) => l !== '');
  if (driver || !hasVariant) {
    // With a driver the variant is chosen silently; without a variant there is nothing to skip.
    assert.deepEqual(lines, []);
    assert.deepEqual(out.binaries, [driver && hasVariant ? cudaVariant : cpuBinary]);
    return;
  }
  assert.equal(lines.length, 1, `stderr: ${JSON.stringify(stderr)}`);
  assert.match(lines[0], /^hgad: cuda variant skipped: no NVIDIA driver found \(.*\); using the CPU binary \(set HGAD_VARIANT=cpu to choose it silently\)$/);
  assert.deepEqual(out.binaries, [cpuBinary]);
  assert.equal(out.cudaInfo.compiled, false);
  assert.equal(out.sameClass, true);
  assertCudaRefused(out);
  console.log(`  ${lines[0]}`);
});

let cpuTrained;  // what the CPU binary printed, for the variant to match

check('HGAD_VARIANT=cpu: the CPU binary, silently', () => {
  const { out, stderr } = runChild('cpu');
  cpuTrained = out.trained;
  assert.equal(out.error, undefined, JSON.stringify(out.error));
  assert.equal(stderr, '');
  assert.deepEqual(out.binaries, [cpuBinary]);
  assert.equal(out.cudaInfo.compiled, false);
  assertCudaRefused(out);
});

check(`HGAD_VARIANT=cuda: ${hasVariant ? `the variant loads${driver ? '' : ' without a driver'} and trains on the CPU`
  : 'no variant, a typed error naming HGAD_VARIANT'}`, () => {
  const { out, stderr } = runChild('cuda');
  if (!hasVariant) {
    assert.equal(out.error.code, 'NATIVE');
    assert.equal(out.error.parameter, 'HGAD_VARIANT');
    return;
  }
  assert.equal(out.error, undefined, JSON.stringify(out.error));
  assert.equal(stderr, '');
  assert.deepEqual(out.binaries, [cudaVariant]);
  assert.equal(out.cudaInfo.compiled, true);
  assert.equal(out.cudaInfo.gemm, 'builtin');
  if (!driver) {
    assert.equal(out.cudaInfo.available, false);
    assert.ok(out.cudaInfo.reason.length > 10, `reason: ${out.cudaInfo.reason}`);
    assertCudaRefused(out);
  }
  console.log(`  cudaInfo: available ${out.cudaInfo.available}, gemm ${out.cudaInfo.gemm}, reason: ${out.cudaInfo.reason}`);
  // The same sources, OpenBLAS, seed and thread count: the variant's CPU path gives the same numbers.
  assert.equal(out.trained, cpuTrained, 'the variant trained and scored like the CPU binary');
  console.log(`  ${out.trained} (as with the CPU binary)`);
});

check('HGAD_VARIANT=gpu: a typed error naming HGAD_VARIANT', () => {
  const { out } = runChild('gpu');
  assert.equal(out.error.name, 'HgadArgumentError');
  assert.equal(out.error.parameter, 'HGAD_VARIANT');
  assert.match(out.error.message, /'cuda'/);
});

(async () => {
  if (process.argv[2] === '--child') return child();
  let failed = 0;
  for (const [name, fn] of checks) {
    try {
      await fn();
      console.log(`ok ${name}`);
    } catch (e) {
      failed += 1;
      console.log(`FAIL ${name}: ${e && e.message ? e.message.split('\n')[0] : e}`);
    }
  }
  process.exit(failed ? 1 : 0);
})();
