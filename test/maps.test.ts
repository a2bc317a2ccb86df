// Anomaly maps (lib/score/maps.ts) against torch's F.interpolate(align_corners=True) and scipy's
// gaussian_filter semantics, the authors' batch protocol worked by hand, and the batch independence of
// calibrated constants.
import { HgadArgumentError, HgadNonFiniteError } from '../lib/errors';
import { anomalyMaps, batchConstants, levelMaxima, LevelMaps, MapConstants, sumMaxima } from '../lib/score/maps';
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

/** Random flow-like scores: logp around -1, negative entropy in (-ln 3, 0]. */
function randomLevels(seed: number, batch: number, sizes: [number, number][]): LevelMaps[] {
  const u = rng(seed);
  return sizes.map(([height, width]) => {
    const n = batch * height * width;
    const logp = new Float32Array(n), negEntropy = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      logp[i] = -1 + 2 * (u() - 0.5);
      negEntropy[i] = -1.0986 * u();
    }
    return { logp, negEntropy, height, width };
  });
}

/** The levels of images [from, to) of a batch. */
function sliceLevels(levels: LevelMaps[], from: number, to: number): LevelMaps[] {
  return levels.map((l) => {
    const n = l.height * l.width;
    return { ...l, logp: l.logp.slice(from * n, to * n), negEntropy: l.negEntropy.slice(from * n, to * n) };
  });
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const REFERENCE = `
import json, sys
import numpy as np
import torch
import torch.nn.functional as F
d = json.load(sys.stdin)
B, H, W, sigma = d['batch'], d['H'], d['W'], d['sigma']
c = d['constants']
def summed(key, shifts):
    s = torch.zeros(B, 1, H, W, dtype=torch.float64)
    for l, lv in enumerate(d['levels']):
        v = torch.tensor(lv[key], dtype=torch.float32).double().reshape(B, 1, lv['height'], lv['width'])
        s += F.interpolate(torch.exp(v - shifts[l]), size=(H, W), mode='bilinear', align_corners=True)
    return s[:, 0].numpy()
try:
    from scipy.ndimage import gaussian_filter
    blur = lambda a: gaussian_filter(a, sigma, mode='reflect', truncate=4.0)
    blurred_by = 'scipy'
except ImportError:
    # scipy's documented definition: kernel exp(-x^2 / 2 sigma^2) over radius int(4 sigma + 0.5),
    # normalised; 'reflect' = numpy's 'symmetric' padding; axis 0 then axis 1.
    r = int(4 * sigma + 0.5)
    x = np.arange(-r, r + 1)
    k = np.exp(-0.5 * x * x / sigma ** 2)
    k /= k.sum()
    def blur(a):
        p = np.pad(a, r, mode='symmetric')
        t = sum(k[j] * p[j:j + a.shape[0], :] for j in range(2 * r + 1))
        return sum(k[j] * t[:, j:j + a.shape[1]] for j in range(2 * r + 1))
    blurred_by = 'numpy'
sl = summed('logp', c['logpShift'])
sn = summed('negEntropy', c['nentShift'])
maps = [blur(np.maximum(0, c['logpTop'] - sl[b])) * blur(np.maximum(0, c['nentTop'] - sn[b])) for b in range(B)]
print(json.dumps({'maps': np.concatenate([m.ravel() for m in maps]).tolist(), 'sumMax': [float(sl.max()), float(sn.max())],
                  'blurredBy': blurred_by}))
`;

const hasTorch = pythonHas(['torch', 'numpy'], 'the torch/scipy reference of the anomaly maps');

(hasTorch ? test : test.skip)('maps match torch bilinear upsampling (align_corners) and the scipy Gaussian blur', async () => {
  const batch = 2, H = 40, W = 36, sigma = 4;
  const levels = randomLevels(1, batch, [[8, 8], [4, 5], [3, 3]]);
  const constants: MapConstants = { logpShift: [0.2, -0.1, 0.05], nentShift: [0, -0.2, 0.1], logpTop: 3.5, nentTop: 3.2 };
  const ref = runPython<{ maps: number[]; sumMax: [number, number]; blurredBy: string }>(REFERENCE, {
    batch, H, W, sigma, constants,
    levels: levels.map((l) => ({ height: l.height, width: l.width, logp: Array.from(l.logp), negEntropy: Array.from(l.negEntropy) })),
  });
  if (ref.blurredBy !== 'scipy') {
    // eslint-disable-next-line no-console
    console.log('scipy is not installed: the blur reference is numpy code following scipy\'s definition');
  }
  const out = await anomalyMaps(levels, batch, constants, { height: H, width: W, sigma });
  let peak = 0;
  for (const v of ref.maps) peak = Math.max(peak, Math.abs(v));
  expect(peak).toBeGreaterThan(0.1);
  expect(maxAbs(out.maps, ref.maps)).toBeLessThan(1e-6 * peak);
  for (let b = 0; b < batch; b++) {
    expect(out.scores[b]).toBe(Math.max(...out.maps.subarray(b * H * W, (b + 1) * H * W)));
  }
  const top = await sumMaxima(levels, batch, { logp: constants.logpShift, nent: constants.nentShift }, { height: H, width: W });
  expect(top.logp).toBeCloseTo(ref.sumMax[0], 10);
  expect(top.nent).toBeCloseTo(ref.sumMax[1], 10);
});

test('batch constants: per-level maxima, then the maxima of the sums; the worked single-level case', async () => {
  // One level at the output size: upsampling is the identity, so S = exp(v - max v), top = 1 and
  // without blur map = (1 - exp(logp - max logp)) * (1 - exp(nent - max nent)).
  const batch = 3, H = 6, W = 7, n = H * W;
  const [level] = randomLevels(2, batch, [[H, W]]);
  const lv = level!;
  const mlp = Math.max(...lv.logp), mne = Math.max(...lv.negEntropy);
  const m = await levelMaxima([lv], batch);
  expect(m).toEqual({ logp: [mlp], nent: [mne] });
  const c = await batchConstants([lv], batch, { height: H, width: W });
  expect(c.logpShift).toEqual([mlp]);
  expect(c.nentShift).toEqual([mne]);
  expect(c.logpTop).toBeCloseTo(1, 12);
  expect(c.nentTop).toBeCloseTo(1, 12);
  const out = await anomalyMaps([lv], batch, c, { height: H, width: W, sigma: 0 });
  const expected = new Float32Array(batch * n);
  for (let i = 0; i < batch * n; i++) {
    expected[i] = (1 - Math.exp(lv.logp[i]! - mlp)) * (1 - Math.exp(lv.negEntropy[i]! - mne));
  }
  expect(maxAbs(out.maps, expected)).toBeLessThan(1e-6);
  // The position of the batch's highest logp has A_logp = 0.
  expect(out.maps[lv.logp.indexOf(mlp)]).toBe(0);
});

test('batch protocol with several levels: the top pixel of S has A = 0, so the unblurred map has a zero', async () => {
  const batch = 4, size = { height: 32, width: 32, sigma: 0 };
  const levels = randomLevels(3, batch, [[8, 8], [4, 4]]);
  const c = await batchConstants(levels, batch, size);
  const out = await anomalyMaps(levels, batch, c, size);
  expect(Math.min(...out.maps)).toBe(0);
  expect(Math.max(...out.maps)).toBeGreaterThan(0);
  // Every S is at most top: no clamp is active, every value is a product of two non-negatives.
  expect(out.maps.every((v) => v >= 0)).toBe(true);
  // A flat negative entropy gives S_nent = L everywhere, hence A_nent = 0 and an all-zero map.
  const flat = levels.map((l) => ({ ...l, negEntropy: new Float32Array(l.negEntropy.length).fill(-0.3) }));
  const cf = await batchConstants(flat, batch, size);
  expect(cf.nentTop).toBeCloseTo(2, 12);
  const zero = await anomalyMaps(flat, batch, cf, { ...size, sigma: 4 });
  expect(Math.max(...zero.maps.map(Math.abs))).toBeLessThan(1e-12);
});

test('calibrated constants: an image\'s map does not depend on the other images of its batch', async () => {
  const size = { height: 48, width: 48 };
  const calib = randomLevels(4, 5, [[12, 12], [6, 6]]);
  const constants = await batchConstants(calib, 5, size);
  const test3 = randomLevels(5, 3, [[12, 12], [6, 6]]);
  const together = await anomalyMaps(test3, 3, constants, size);
  for (let b = 0; b < 3; b++) {
    const alone = await anomalyMaps(sliceLevels(test3, b, b + 1), 1, constants, size);
    expect(Array.from(alone.maps)).toEqual(Array.from(together.maps.subarray(b * 48 * 48, (b + 1) * 48 * 48)));
    expect(alone.scores[0]).toBe(together.scores[b]);
  }
  // The authors' protocol does depend on the batch: image 0 scored with others differs from alone.
  const withOthers = await anomalyMaps(test3, 3, await batchConstants(test3, 3, size), size);
  const first = sliceLevels(test3, 0, 1);
  const alone = await anomalyMaps(first, 1, await batchConstants(first, 1, size), size);
  expect(maxAbs(alone.maps, withOthers.maps.subarray(0, 48 * 48))).toBeGreaterThan(1e-4);
});

test('streaming calibration (running maxima over batches) equals the constants of all images at once', async () => {
  const size = { height: 20, width: 24 };
  const all = randomLevels(6, 6, [[5, 6], [3, 4]]);
  const whole = await batchConstants(all, 6, size);
  const parts = [sliceLevels(all, 0, 2), sliceLevels(all, 2, 5), sliceLevels(all, 5, 6)];
  const counts = [2, 3, 1];
  const shifts = { logp: [-Infinity, -Infinity], nent: [-Infinity, -Infinity] };
  for (let k = 0; k < parts.length; k++) {
    const m = await levelMaxima(parts[k]!, counts[k]!);
    for (let l = 0; l < 2; l++) {
      shifts.logp[l] = Math.max(shifts.logp[l]!, m.logp[l]!);
      shifts.nent[l] = Math.max(shifts.nent[l]!, m.nent[l]!);
    }
  }
  let logpTop = -Infinity, nentTop = -Infinity;
  for (let k = 0; k < parts.length; k++) {
    const t = await sumMaxima(parts[k]!, counts[k]!, shifts, size);
    logpTop = Math.max(logpTop, t.logp);
    nentTop = Math.max(nentTop, t.nent);
  }
  expect({ logpShift: shifts.logp, nentShift: shifts.nent, logpTop, nentTop }).toEqual(whole);
});

test('bad input is rejected with typed errors naming the parameter', async () => {
  const size = { height: 16, width: 16 };
  const levels = randomLevels(7, 2, [[4, 4], [2, 2]]);
  const c = await batchConstants(levels, 2, size);
  const bad = levels.map((l) => ({ ...l, logp: l.logp.slice() }));
  bad[1]!.logp[5] = NaN;
  await expect(anomalyMaps(bad, 2, c, size)).rejects.toMatchObject({ name: 'HgadNonFiniteError', parameter: 'levels[1].logp', index: 5 });
  await expect(levelMaxima(bad, 2)).rejects.toBeInstanceOf(HgadNonFiniteError);
  const short = [levels[0]!, { ...levels[1]!, negEntropy: new Float32Array(3) }];
  await expect(anomalyMaps(short, 2, c, size)).rejects.toMatchObject({ parameter: 'levels[1].negEntropy' });
  await expect(anomalyMaps(levels, 2, { ...c, nentShift: [0] }, size)).rejects.toMatchObject({ parameter: 'constants.nentShift' });
  await expect(anomalyMaps(levels, 2, { ...c, logpTop: Infinity }, size)).rejects.toMatchObject({ parameter: 'constants.logpTop' });
  await expect(anomalyMaps(levels, 2, c, { ...size, sigma: -1 })).rejects.toBeInstanceOf(HgadArgumentError);
  await expect(anomalyMaps(levels, 3, c, size)).rejects.toMatchObject({ parameter: 'levels[0].logp' });
  await expect(anomalyMaps([], 2, c, size)).rejects.toMatchObject({ parameter: 'levels' });
  await expect(sumMaxima(levels, 2, { logp: [0, NaN], nent: [0, 0] }, size)).rejects.toMatchObject({ parameter: 'shifts.logp[1]' });
  await expect(anomalyMaps(levels, 2, c, { height: 0, width: 16 })).rejects.toMatchObject({ parameter: 'size.height' });
});
