// Run by scripts/test-install.sh inside the directory hgad was installed into (never from the repo):
// loads the installed package the way a user does and trains and scores a small model with it.
// Prints one `ok <check>` or `FAIL <check>: why` line per check.
'use strict';
const assert = require('node:assert/strict');
const path = require('node:path');

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

check('train and score', async () => {
  const { HgadModel } = require('hgad');
  const C = 16, hw = 4, batch = 4;
  const model = HgadModel.create({ levels: [{ channels: C }], classes: ['a', 'b'], couplingLayers: 2,
    centersPerClass: 2, posEmbedDim: 8, seed: 1, threads: 2 });
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
  console.log(`  loss ${first.toFixed(3)} -> ${last.toFixed(3)}; mean logp normal ${n.toFixed(3)}, anomalous ${a.toFixed(3)}`);
});

(async () => {
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
