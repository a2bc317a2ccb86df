// An ArrayBuffer handed to an asynchronous engine or image operation can be transferred away
// (structuredClone / postMessage with `transfer`) and freed while the operation runs. The operations
// work on native copies, so the process survives and the results are those of the data as it was at
// the call; an output array transferred away makes the call reject instead of writing into freed
// memory. Run in a child process: without the copies the child dies of SIGSEGV.
import { runSnippet } from './child-process';

const SNIPPET = `
const { HgadModel } = require(LIB);
const { imageOps } = require(LIB + '/native-ops');

// 512 KiB arrays: freed, their memory is unmapped, so a read after the transfer faults at once.
const C = 64, B = 8, H = 16, W = 16, N = B * H * W;
function features(salt) {
  const d = new Float32Array(N * C);
  for (let i = 0; i < d.length; i++) d[i] = Math.sin(salt + i * 0.37);
  return d;
}
// Transfers the array's buffer away, drops it, collects it and fills the freed memory with other data.
const junk = [];
function stealAndFree(a) {
  let moved = structuredClone(a.buffer, { transfer: [a.buffer] });
  if (a.length !== 0) throw new Error('the buffer was not detached');
  moved = null;
  global.gc();
  for (let k = 0; k < 4; k++) junk.push(new Float32Array(N * C).fill(1e30));
}
// HgadModel dispatches each call once the calls before it settled: let it reach the addon first.
const dispatched = () => new Promise((r) => setImmediate(r));
function same(a, b, what) {
  if (a.length !== b.length || a.some((v, i) => !Object.is(v, b[i]))) throw new Error(what + ' differs from the reference');
}

(async () => {
  const config = { levels: [{ channels: C }], classes: ['a', 'b'], couplingLayers: 6, posEmbedDim: 32, seed: 1, threads: 1, device: 'cpu' };
  const model = HgadModel.create(config);
  const batch = (data) => ({ data, batch: B, height: H, width: W, channels: C });
  const labels = Int32Array.from({ length: B }, (_, i) => i % 2);

  const refScore = await model.score(0, batch(features(1)));
  const refForward = await model.forward(0, batch(features(2)));
  const refInverse = await model.inverse(0, features(3), { batch: B, height: H, width: W });
  const refGrad = await model.gradients(0, batch(features(4)), labels);

  let x = features(1);
  let p = model.score(0, batch(x));
  await dispatched();
  stealAndFree(x);
  same((await p).logp, refScore.logp, 'score logp');

  x = features(2);
  p = model.forward(0, batch(x));
  await dispatched();
  stealAndFree(x);
  same((await p).z, refForward.z, 'forward z');

  x = features(3);
  p = model.inverse(0, x, { batch: B, height: H, width: W });
  await dispatched();
  stealAndFree(x);
  same((await p).data, refInverse.data, 'inverse x');

  x = features(4);
  let l = labels.slice();
  p = model.gradients(0, batch(x), l);
  await dispatched();
  stealAndFree(x);
  same((await p).inputGrad, refGrad.inputGrad, 'inputGrad');

  x = features(5);
  p = model.trainStep(0, batch(x), labels, { phase: 1, lr: 1e-4 });
  await dispatched();
  stealAndFree(x);
  const losses = await p;
  if (!Number.isFinite(losses.loss)) throw new Error('trainStep loss not finite');

  // An output array transferred while the job runs: a typed rejection naming it, no write into freed memory.
  const core = model.core;
  const out = { logp: new Float32Array(N), nent: new Float32Array(N), logits: new Float32Array(N * 2) };
  const q = core.score(0, features(1), B, H, W, null, out.logp, out.nent, out.logits, new Int32Array(B), null);
  stealAndFree(out.logp);
  const err = await q.then(() => null, (e) => e);
  if (!err || err.code !== 'INVALID_ARGUMENT' || err.parameter !== 'logp') throw new Error('expected a rejection naming logp, got ' + err);

  // Image operations.
  const ops = imageOps();
  const level = () => ({ logp: features(6).subarray(0, N), negEntropy: features(7).subarray(0, N), height: H, width: W });
  const refMaps = await ops.anomalyMaps([level()], B, [1], [1], 0, 0, 32, 32, 2, false);
  const lv = level();
  const pm = ops.anomalyMaps([lv], B, [1], [1], 0, 0, 32, 32, 2, false);
  stealAndFree(lv.logp);
  same((await pm).maps, refMaps.maps, 'anomaly maps');

  const scores = features(8);
  const marks = new Uint8Array(scores.length).map((_, i) => i % 3 === 0 ? 1 : 0);
  const refAuc = await ops.rocAuc(features(8), marks);
  const pa = ops.rocAuc(scores, marks);
  stealAndFree(scores);
  if ((await pa) !== refAuc) throw new Error('rocAuc differs');

  const map = features(9).subarray(0, H * W * 64);
  const refRgb = await ops.colorize(features(9).subarray(0, H * W * 64), H * 8, W * 8, -1, 1);
  const pc = ops.colorize(map, H * 8, W * 8, -1, 1);
  stealAndFree(map);
  same(await pc, refRgb, 'colorize');

  const maps = features(10);
  const masks = new Uint8Array(maps.length).map((_, i) => (i % 7 === 0 ? 1 : 0));
  const refPro = await ops.aupro(features(10), masks, B * C, H, W, 0.3);
  const pp = ops.aupro(maps, masks, B * C, H, W, 0.3);
  stealAndFree(maps);
  if ((await pp) !== refPro) throw new Error('aupro differs');

  console.log('survived');
})().catch((e) => {
  console.error(e);
  process.exit(3);
});
`;

test('inputs and outputs transferred away and freed while operations run: no crash, same results', async () => {
  const r = await runSnippet(SNIPPET, { nodeArgs: ['--expose-gc'], timeoutMs: 120_000 });
  if (r.code !== 0) console.log(r.stdout, r.stderr);
  expect({ code: r.code, signal: r.signal }).toEqual({ code: 0, signal: null });
  expect(r.stdout).toContain('survived');
});
