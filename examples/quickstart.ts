// npm run quickstart: the engine end to end on a built-in synthetic task, in about a minute.
//
// Three "product classes" produce 8x8 maps of 32-channel features; each class has its own normal
// feature distribution (a few modes that depend on position). One unified HGAD model is trained on
// normal maps of all three classes; then normal test maps and maps with a defect (a 3x3 patch of
// features from another distribution) are scored. The anomaly map is the authors' combination of
// logp and negative entropy reduced to an image score; the script prints image AUROC per class.
import { HgadModel } from '../lib';

const C = 32, H = 8, W = 8, CLASSES = ['bolt', 'fabric', 'tile'];

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gaussian(r: () => number): number {
  return Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
}

// Class y's normal features at (row, col): one of 3 class-specific modes, chosen by position.
function makeMap(cls: number, r: () => number, defect: boolean): Float32Array {
  const out = new Float32Array(H * W * C);
  const modes = rng(1000 + cls);
  const centres = Array.from({ length: 3 }, () => Array.from({ length: C }, () => 2 * gaussian(modes)));
  const pr = Math.floor(r() * (H - 3)), pc = Math.floor(r() * (W - 3));
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const inPatch = defect && y >= pr && y < pr + 3 && x >= pc && x < pc + 3;
      const centre = centres[(y + x + cls) % 3]!;
      for (let c = 0; c < C; c++) {
        const v = inPatch ? 1.5 * gaussian(r) + (c % 2 ? 2 : -2) : centre[c]! + 0.5 * gaussian(r);
        out[(y * W + x) * C + c] = v;
      }
    }
  }
  return out;
}

function auroc(normal: number[], anomalous: number[]): number {
  let wins = 0;
  for (const a of anomalous) for (const n of normal) wins += a > n ? 1 : a === n ? 0.5 : 0;
  return wins / (normal.length * anomalous.length);
}

async function main(): Promise<void> {
  const model = HgadModel.create({
    levels: [{ channels: C }], classes: CLASSES, couplingLayers: 6, posEmbedDim: 32, centersPerClass: 4, seed: 7,
  });
  const r = rng(42);
  const batch = 6, steps = 300;
  const t0 = Date.now();
  for (let step = 0; step < steps; step++) {
    const data = new Float32Array(batch * H * W * C);
    const labels = new Int32Array(batch);
    for (let b = 0; b < batch; b++) {
      labels[b] = b % CLASSES.length;
      data.set(makeMap(labels[b]!, r, false), b * H * W * C);
    }
    const phase = step < steps / 4 ? 1 : 2;
    const lr = 1e-3 * (step < 20 ? (step + 1) / 20 : 0.5 * (1 + Math.cos((Math.PI * step) / steps)));
    const loss = await model.trainStep(0, { data, batch, height: H, width: W, channels: C }, labels, { phase, lr });
    if (step % 50 === 0 || step === steps - 1) {
      console.log(`step ${String(step).padStart(3)}  phase ${phase}  loss ${loss.loss.toFixed(3)}  ` +
        `Lg ${loss.Lg.toFixed(3)}  Lmi ${loss.Lmi.toFixed(3)}  Le ${loss.Le.toFixed(3)}`);
    }
  }
  console.log(`trained ${steps} steps of ${batch} maps in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  // Image score: the worst position of logp (low = unlikely) combined with negative entropy.
  const scoreImages = async (cls: number, defect: boolean, n: number): Promise<{ s: number[]; hits: number }> => {
    const data = new Float32Array(n * H * W * C);
    for (let b = 0; b < n; b++) data.set(makeMap(cls, r, defect), b * H * W * C);
    const out = await model.score(0, { data, batch: n, height: H, width: W, channels: C });
    const s: number[] = [];
    let hits = 0;
    for (let b = 0; b < n; b++) {
      let worst = -Infinity;
      for (let p = 0; p < H * W; p++) {
        const i = b * H * W + p;
        worst = Math.max(worst, -out.logp[i]! - out.negEntropy[i]!);
      }
      s.push(worst);
      if (out.classIndex[b] === cls) hits++;
    }
    return { s, hits };
  };
  for (let cls = 0; cls < CLASSES.length; cls++) {
    const good = await scoreImages(cls, false, 20);
    const bad = await scoreImages(cls, true, 20);
    console.log(`${CLASSES[cls]!.padEnd(7)} image AUROC ${auroc(good.s, bad.s).toFixed(3)}   ` +
      `class inferred correctly for ${good.hits + bad.hits}/40 images`);
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
