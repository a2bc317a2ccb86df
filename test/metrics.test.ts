// AUROC, F1-max and AUPRO (lib/eval/metrics.ts) against values worked by hand and brute-force
// references written here (pairwise counting, every threshold evaluated from scratch).
import { aupro, auroc, f1Max } from '../lib/eval/metrics';
import { pythonHas, runPython } from './python';

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const f32 = (a: number[]): Float32Array => Float32Array.from(a);
const u8 = (a: number[]): Uint8Array => Uint8Array.from(a);

function pairwiseAuc(s: Float32Array, y: Uint8Array): number {
  let num = 0, pairs = 0;
  for (let i = 0; i < s.length; i++) {
    if (!y[i]) continue;
    for (let j = 0; j < s.length; j++) {
      if (y[j]) continue;
      pairs += 1;
      num += s[i]! > s[j]! ? 1 : s[i] === s[j] ? 0.5 : 0;
    }
  }
  return num / pairs;
}

describe('auroc', () => {
  test('worked examples, with and without ties', async () => {
    expect(await auroc(f32([0.1, 0.4, 0.35, 0.8]), u8([0, 0, 1, 1]))).toBe(0.75);
    // Positives {2, 3}, negatives {1, 2}: 1 + 0.5 (tie) + 1 + 1 of 4 pairs.
    expect(await auroc(f32([1, 2, 2, 3]), u8([0, 1, 0, 1]))).toBe(0.875);
    expect(await auroc(f32([5, 5, 5, 5, 5]), u8([0, 1, 0, 1, 1]))).toBe(0.5);
    expect(await auroc(f32([1, 2, 3, 4]), u8([0, 0, 255, 255]))).toBe(1);
    expect(await auroc(f32([1, 2, 3, 4]), u8([9, 9, 0, 0]))).toBe(0);
    expect(await auroc(f32([-0, 0, 1]), u8([1, 0, 1]))).toBe(0.75);
  });

  test('only one class present gives NaN', async () => {
    expect(await auroc(f32([1, 2, 3]), u8([0, 0, 0]))).toBeNaN();
    expect(await auroc(f32([1, 2, 3]), u8([1, 1, 1]))).toBeNaN();
    expect(await auroc(f32([]), u8([]))).toBeNaN();
  });

  test('random scores with many ties match pairwise counting', async () => {
    const u = rng(1);
    for (const levels of [4, 30, 1e6]) {
      const n = 600;
      const s = Float32Array.from({ length: n }, () => Math.floor(u() * levels) / levels - 0.5);
      const y = Uint8Array.from({ length: n }, () => (u() < 0.3 ? 255 : 0));
      expect(await auroc(s, y)).toBeCloseTo(pairwiseAuc(s, y), 12);
    }
  });

  test('twelve million pixels: matches the count-per-score reference', async () => {
    // A random block of a million pixels repeated 12 times (JS loops are slow under jest's vm).
    const block = 1_000_000, repeats = 12, levels = 1000;
    const u = rng(2);
    const bs = new Float32Array(block), by = new Uint8Array(block);
    const pos = new Float64Array(levels), neg = new Float64Array(levels);
    for (let i = 0; i < block; i++) {
      const r = u(), anomalous = r < 0.05;
      const k = Math.min(levels - 1, Math.floor((((r * 1e4) % 1) + (anomalous ? 0.3 : 0)) * levels * 0.8));
      bs[i] = k;
      by[i] = anomalous ? 255 : 0;
      if (anomalous) pos[k]! += repeats; else neg[k]! += repeats;
    }
    const s = new Float32Array(block * repeats), y = new Uint8Array(block * repeats);
    for (let k = 0; k < repeats; k++) {
      s.set(bs, k * block);
      y.set(by, k * block);
    }
    // Negatives below count fully, tied ones a half.
    let below = 0, num = 0, P = 0, N = 0;
    for (let k = 0; k < levels; k++) {
      num += pos[k]! * (below + neg[k]! / 2);
      below += neg[k]!;
      P += pos[k]!;
      N += neg[k]!;
    }
    const started = Date.now();
    const got = await auroc(s, y);
    expect(got).toBeCloseTo(num / (P * N), 12);
    expect(Date.now() - started).toBeLessThan(20000);
  });

  const hasSklearn = pythonHas(['sklearn'], 'the sklearn cross-check of auroc');
  (hasSklearn ? test : test.skip)('matches sklearn.metrics.roc_auc_score', async () => {
    const u = rng(3);
    const s = Float32Array.from({ length: 2000 }, () => Math.round(u() * 50) / 50);
    const y = Uint8Array.from({ length: 2000 }, () => (u() < 0.4 ? 1 : 0));
    const ref = runPython<number>('import json,sys\nfrom sklearn.metrics import roc_auc_score\nd=json.load(sys.stdin)\n' +
      'print(json.dumps(roc_auc_score(d["y"], d["s"])))', { s: Array.from(s), y: Array.from(y) });
    expect(await auroc(s, y)).toBeCloseTo(ref, 12);
  });

  test('bad input is rejected', async () => {
    await expect(auroc(f32([1, NaN]), u8([0, 1]))).rejects.toMatchObject({ name: 'HgadNonFiniteError', parameter: 'scores', index: 1 });
    await expect(auroc(f32([1, 2]), u8([0]))).rejects.toMatchObject({ parameter: 'labels' });
    await expect(auroc([1, 2] as unknown as Float32Array, u8([0, 1]))).rejects.toMatchObject({ parameter: 'scores' });
  });
});

describe('f1Max', () => {
  test('worked example', async () => {
    // Thresholds 0.9 .. 0.5: F1 = 2TP / (TP + FP + P) = 2/4, 2/5, 4/6, 6/7, 6/8.
    const r = await f1Max(f32([0.9, 0.8, 0.7, 0.6, 0.5]), u8([1, 0, 1, 1, 0]));
    expect(r.f1).toBeCloseTo(6 / 7, 14);
    expect(r.threshold).toBe(Math.fround(0.6));
  });

  test('ties decide together; no anomalous sample gives NaN', async () => {
    // At 2 both tied samples are in: TP 2, FP 1 -> 4/5; at 1: TP 2, FP 2 -> 4/6.
    expect(await f1Max(f32([2, 2, 1, 2]), u8([1, 0, 0, 1]))).toEqual({ f1: 0.8, threshold: 2 });
    expect(await f1Max(f32([1, 2]), u8([0, 0]))).toEqual({ f1: NaN, threshold: NaN });
    expect(await f1Max(f32([1, 2]), u8([1, 1]))).toEqual({ f1: 1, threshold: 1 });
  });

  test('random scores match every threshold evaluated from scratch', async () => {
    const u = rng(4);
    const n = 400;
    const s = Float32Array.from({ length: n }, () => Math.floor(u() * 25));
    const y = Uint8Array.from({ length: n }, (_, i) => (u() < 0.2 + s[i]! / 50 ? 1 : 0));
    let best = -1, bestT = NaN;
    for (const t of [...new Set(s)].sort((a, b) => b - a)) {
      let tp = 0, fp = 0, fn = 0;
      for (let i = 0; i < n; i++) {
        if (s[i]! >= t) { if (y[i]) tp++; else fp++; } else if (y[i]) fn++;
      }
      const f1 = (2 * tp) / (2 * tp + fp + fn);
      if (f1 > best) { best = f1; bestT = t; }
    }
    const r = await f1Max(s, y);
    expect(r.f1).toBeCloseTo(best, 14);
    expect(r.threshold).toBe(bestT);
  });
});

/** 8-connected components by flood fill: region index per pixel (-1 = normal) and region sizes. */
function regions(masks: Uint8Array, count: number, H: number, W: number): { label: Int32Array; sizes: number[] } {
  const label = new Int32Array(masks.length).fill(-1);
  const sizes: number[] = [];
  for (let b = 0; b < count; b++) {
    for (let p = 0; p < H * W; p++) {
      const start = b * H * W + p;
      if (!masks[start] || label[start]! >= 0) continue;
      const r = sizes.length;
      sizes.push(0);
      const stack = [p];
      label[start] = r;
      while (stack.length) {
        const q = stack.pop()!;
        sizes[r]! += 1;
        const y = Math.floor(q / W), x = q % W;
        for (let dy = -1; dy <= 1; dy++) {
          for (let dx = -1; dx <= 1; dx++) {
            const yy = y + dy, xx = x + dx, j = b * H * W + yy * W + xx;
            if (yy < 0 || yy >= H || xx < 0 || xx >= W || !masks[j] || label[j]! >= 0) continue;
            label[j] = r;
            stack.push(yy * W + xx);
          }
        }
      }
    }
  }
  return { label, sizes };
}

/** AUPRO from its definition: every distinct threshold evaluated over all pixels. */
function referenceAupro(maps: Float32Array, masks: Uint8Array, count: number, H: number, W: number, maxFpr: number): number {
  const { label, sizes } = regions(masks, count, H, W);
  const normals = label.filter((l) => l < 0).length;
  const xs = [0], ys = [0];
  for (const t of [...new Set(maps)].sort((a, b) => b - a)) {
    let fp = 0;
    const hit = new Array<number>(sizes.length).fill(0);
    for (let i = 0; i < maps.length; i++) {
      if (maps[i]! < t) continue;
      if (label[i]! < 0) fp++; else hit[label[i]!]! += 1;
    }
    xs.push(fp / normals);
    ys.push(hit.reduce((a, h, r) => a + h / sizes[r]!, 0) / sizes.length);
  }
  let area = 0;
  for (let k = 1; k < xs.length; k++) {
    if (xs[k]! <= maxFpr) {
      area += 0.5 * (ys[k]! + ys[k - 1]!) * (xs[k]! - xs[k - 1]!);
    } else {
      const y = ys[k - 1]! + ((ys[k]! - ys[k - 1]!) * (maxFpr - xs[k - 1]!)) / (xs[k]! - xs[k - 1]!);
      area += 0.5 * (y + ys[k - 1]!) * (maxFpr - xs[k - 1]!);
      break;
    }
  }
  return area / maxFpr;
}

describe('aupro', () => {
  // 2 x 4 image, regions {(0,0), (0,1)} (size 2) and {(1,3)} (size 1), five normal pixels.
  const mask = u8([255, 255, 0, 0, 0, 0, 0, 255]);
  const scores = f32([0.9, 0.5, 0.8, 0.1, 0.2, 0.3, 0.4, 0.7]);

  test('worked example: two regions, the curve cut at maxFpr', async () => {
    // (FPR, PRO) by threshold: 0.9 (0, 0.25); 0.8 (0.2, 0.25); 0.7 (0.2, 0.75); 0.5 (0.2, 1);
    // 0.4 (0.4, 1); 0.3 (0.6, 1); 0.2 (0.8, 1); 0.1 (1, 1).
    expect(await aupro(scores, mask, 1, 2, 4, 0.3)).toBeCloseTo((0.25 * 0.2 + 1 * 0.1) / 0.3, 14);
    expect(await aupro(scores, mask, 1, 2, 4)).toBeCloseTo(0.5, 14);
    expect(await aupro(scores, mask, 1, 2, 4, 1)).toBeCloseTo(0.05 + 0.8, 14);
    expect(await aupro(scores, mask, 1, 2, 4, 0.1)).toBeCloseTo(0.25, 14);
    expect(await aupro(scores, mask, 1, 2, 4, 0.2)).toBeCloseTo(0.25, 14);
  });

  test('a normal pixel tied with an anomalous one gives a sloped segment, interpolated at maxFpr', async () => {
    // The normal 0.4 becomes 0.5: at 0.5 the curve goes from (0.2, 0.75) to (0.4, 1); at 0.3 it is
    // 0.875: area 0.05 + 0.5 * (0.75 + 0.875) * 0.1.
    const tied = scores.slice();
    tied[6] = 0.5;
    expect(await aupro(tied, mask, 1, 2, 4, 0.3)).toBeCloseTo((0.05 + 0.08125) / 0.3, 14);
  });

  test('regions are 8-connected', async () => {
    // Pixels (0,0), (0,1), (1,2): one region of 3 through the diagonal (4-connectivity would give two,
    // and PRO 0.5 instead of 1/3 once (1,2) alone is found). Normals score 0.5.
    const m = u8([1, 1, 0, 0, 0, 1, 0, 0, 0]);
    const s = f32([0.1, 0.1, 0.5, 0.5, 0.5, 0.9, 0.5, 0.5, 0.5]);
    // Curve (0, 0), (0, 1/3), (1, 1/3), (1, 1): area 1/3.
    expect(await aupro(s, m, 1, 3, 3, 1)).toBeCloseTo(1 / 3, 14);
  });

  test('random maps with ties match every threshold evaluated from scratch', async () => {
    const u = rng(5);
    const count = 3, H = 10, W = 12;
    const masks = new Uint8Array(count * H * W), maps = new Float32Array(count * H * W);
    for (let i = 0; i < masks.length; i++) {
      masks[i] = u() < 0.12 ? 255 : 0;
      maps[i] = Math.round((u() + (masks[i] ? 0.3 : 0)) * 30) / 30;
    }
    for (const maxFpr of [0.3, 0.05, 1]) {
      expect(await aupro(maps, masks, count, H, W, maxFpr)).toBeCloseTo(referenceAupro(maps, masks, count, H, W, maxFpr), 12);
    }
  });

  test('many images: invariant to a rescaling of the scores', async () => {
    const u = rng(6);
    const count = 60, H = 128, W = 128, hw = H * W;
    const masks = new Uint8Array(count * hw), maps = new Float32Array(count * hw);
    for (let b = 0; b < count; b++) {
      const cy = Math.floor(u() * H), cx = Math.floor(u() * W), r = 3 + Math.floor(u() * 10);
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          const inside = b % 3 !== 0 && (y - cy) ** 2 + (x - cx) ** 2 < r * r;
          masks[b * hw + y * W + x] = inside ? 255 : 0;
          maps[b * hw + y * W + x] = u() + (inside ? 0.5 : 0);
        }
      }
    }
    const a = await aupro(maps, masks, count, H, W);
    expect(a).toBeGreaterThan(0.3);
    expect(a).toBeLessThan(1);
    const scaled = maps.map((v) => 4 * v); // exact in float32, so no two scores merge
    expect(await aupro(scaled, masks, count, H, W)).toBeCloseTo(a, 12);
  });

  test('NaN without regions or without normal pixels; bad input rejected', async () => {
    expect(await aupro(scores, new Uint8Array(8), 1, 2, 4)).toBeNaN();
    expect(await aupro(scores, new Uint8Array(8).fill(1), 1, 2, 4)).toBeNaN();
    await expect(aupro(scores, mask, 1, 2, 4, 0)).rejects.toMatchObject({ parameter: 'maxFpr' });
    await expect(aupro(scores, mask, 2, 2, 4)).rejects.toMatchObject({ parameter: 'maps' });
    await expect(aupro(scores, new Uint8Array(7), 1, 2, 4)).rejects.toMatchObject({ parameter: 'masks' });
  });
});
