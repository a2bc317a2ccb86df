// The synthetic demo dataset: determinism, MVTec layout, mask validity, defect visibility, options,
// atomic writing, and a contact sheet for a person to look at.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp, { type OverlayOptions } from 'sharp';
import { HgadArgumentError, HgadError } from '../lib/errors';
import * as render from '../lib/demo/render';
import {
  DEMO_CLASSES, DEMO_DEFECT_AREA, DEMO_MANIFEST, describeDemoDataset, generateDemoDataset, renderDemoSample,
  type DemoDatasetInfo,
} from '../lib/demo';
import { Rng, mixSeed, mulberry32 } from '../lib/demo/prng';

const SIZE = 128;
const SMALL = { size: SIZE, trainPerClass: 3, testGoodPerClass: 2, testDefectPerClass: 7 };

let tmp: string;
let first: DemoDatasetInfo;

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'hgad-synthetic-'));
  first = await generateDemoDataset({ root: path.join(tmp, 'a'), ...SMALL });
});

afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

async function listFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await fs.readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else out.push(path.relative(root, p));
    }
  };
  await walk(root);
  return out.sort();
}

async function hashTree(root: string): Promise<Map<string, string>> {
  const hashes = new Map<string, string>();
  for (const f of await listFiles(root)) {
    hashes.set(f, createHash('sha256').update(await fs.readFile(path.join(root, f))).digest('hex'));
  }
  return hashes;
}

// sharp decodes a one-band PNG to RGB unless asked to keep it grey; masks are read as they are stored.
async function rawPixels(png: Buffer): Promise<{ data: Buffer; width: number; height: number; channels: number }> {
  const stored = (await sharp(png).metadata()).channels;
  const pipeline = stored === 1 ? sharp(png).toColourspace('b-w') : sharp(png);
  const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

describe('prng', () => {
  test('mulberry32 matches the reference implementation', () => {
    // Reference values from the published JavaScript mulberry32 (also recomputed in Python).
    const r = mulberry32(42);
    expect(r()).toBeCloseTo(0.6011037519201636, 15);
    expect(r()).toBeCloseTo(0.44829055899754167, 15);
    expect(r()).toBeCloseTo(0.8524657934904099, 15);
    const z = mulberry32(0);
    expect(z()).toBeCloseTo(0.26642920868471265, 15);
  });

  test('mixed seeds separate the streams and int() stays in range', () => {
    expect(mixSeed(0, 1, 2)).not.toBe(mixSeed(0, 2, 1));
    expect(mixSeed(0, 1, 2)).toBe(mixSeed(0, 1, 2));
    const rng = new Rng(7);
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) {
      const v = rng.int(3, 6);
      expect(v).toBeGreaterThanOrEqual(3);
      expect(v).toBeLessThanOrEqual(6);
      seen.add(v);
    }
    expect([...seen].sort()).toEqual([3, 4, 5, 6]);
  });
});

describe('generateDemoDataset', () => {
  test('the same seed gives byte-identical files; another seed gives other images', async () => {
    const again = await generateDemoDataset({ root: path.join(tmp, 'b'), ...SMALL, concurrency: 1 });
    expect(again.reused).toBe(false);
    const a = await hashTree(first.root);
    const b = await hashTree(again.root);
    expect([...b.keys()]).toEqual([...a.keys()]);
    for (const [f, h] of a) expect(b.get(f)).toBe(h);

    const other = await generateDemoDataset({ root: path.join(tmp, 'c'), ...SMALL, seed: 1 });
    const c = await hashTree(other.root);
    expect([...c.keys()]).toEqual([...a.keys()]);
    const images = [...a.keys()].filter((f) => f.endsWith('.png'));
    const same = images.filter((f) => a.get(f) === c.get(f));
    expect(same).toEqual([]);
  });

  test('writes the MVTec AD layout with the requested counts', async () => {
    const files = await listFiles(first.root);
    expect(first.classes).toEqual([...DEMO_CLASSES]);
    expect(DEMO_CLASSES.length).toBeGreaterThanOrEqual(5);
    let expectedImages = 0;
    let expectedMasks = 0;
    for (const cls of first.classes) {
      const defects = first.defects[cls] ?? [];
      expect(defects.length).toBeGreaterThanOrEqual(2);
      const inDir = (dir: string): string[] => files.filter((f) => path.dirname(f) === path.join(cls, dir));
      expect(inDir('train/good')).toEqual(['000', '001', '002'].map((n) => path.join(cls, 'train/good', `${n}.png`)));
      expect(inDir('test/good')).toHaveLength(2);
      const perDefect = defects.map((d) => inDir(`test/${d}`).length);
      expect(perDefect.reduce((s, v) => s + v, 0)).toBe(7);
      expect(Math.max(...perDefect) - Math.min(...perDefect)).toBeLessThanOrEqual(1);
      for (const d of defects) {
        // A mask for every defective image, named as MVTec names them, and nothing else.
        const masks = inDir(`ground_truth/${d}`);
        const expected = inDir(`test/${d}`).map((f) => path.join(cls, 'ground_truth', d, `${path.basename(f, '.png')}_mask.png`));
        expect(masks).toEqual(expected);
        expect(first.counts[cls]?.testDefect[d]).toBe(masks.length);
      }
      expect(files.some((f) => f.startsWith(path.join(cls, 'ground_truth', 'good')))).toBe(false);
      const top = await fs.readdir(path.join(first.root, cls));
      expect(top.sort()).toEqual(['ground_truth', 'test', 'train']);
      expectedImages += 3 + 2 + 7;
      expectedMasks += 7;
    }
    expect(first.images).toBe(expectedImages);
    expect(first.masks).toBe(expectedMasks);
    expect(files.filter((f) => f.endsWith('.png'))).toHaveLength(expectedImages + expectedMasks);
    expect(files).toContain(DEMO_MANIFEST);
    // Nothing but the dataset was left next to it (the temporary build folder was renamed).
    expect((await fs.readdir(tmp)).filter((f) => f.includes('.tmp-'))).toEqual([]);

    const image = await sharp(path.join(first.root, 'pill/train/good/000.png')).metadata();
    expect([image.width, image.height, image.channels, image.format]).toEqual([SIZE, SIZE, 3, 'png']);
    const mask = await sharp(path.join(first.root, 'pill/ground_truth/spot/000_mask.png')).metadata();
    expect([mask.width, mask.height, mask.channels, mask.format, mask.depth]).toEqual([SIZE, SIZE, 1, 'png', 'uchar']);
  });

  test('masks are binary, non-empty and cover 0.3% to 5% of the image', async () => {
    const files = (await listFiles(first.root)).filter((f) => f.endsWith('_mask.png'));
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) {
      const { data, channels } = await rawPixels(await fs.readFile(path.join(first.root, f)));
      expect(channels).toBe(1);
      let on = 0;
      for (const v of data) {
        if (v === 255) on++;
        else if (v !== 0) throw new Error(`${f} has value ${v}`);
      }
      const area = on / data.length;
      expect(area).toBeGreaterThanOrEqual(DEMO_DEFECT_AREA.min);
      expect(area).toBeLessThanOrEqual(DEMO_DEFECT_AREA.max);
    }
  });

  test('normal images vary: texture, pose and exposure differ between good images', async () => {
    for (const cls of DEMO_CLASSES) {
      const a = await rawPixels(await fs.readFile(path.join(first.root, cls, 'train/good/000.png')));
      const b = await rawPixels(await fs.readFile(path.join(first.root, cls, 'train/good/001.png')));
      let sum = 0;
      for (let i = 0; i < a.data.length; i++) sum += Math.abs((a.data[i] ?? 0) - (b.data[i] ?? 0));
      expect(sum / a.data.length).toBeGreaterThan(5);
    }
  });

  test('a second call with the same options reuses the dataset; a foreign folder is refused', async () => {
    const before = await fs.stat(path.join(first.root, 'wood/train/good/000.png'));
    const info = await generateDemoDataset({ root: first.root, ...SMALL });
    expect(info.reused).toBe(true);
    expect(info.images).toBe(first.images);
    const after = await fs.stat(path.join(first.root, 'wood/train/good/000.png'));
    expect(after.mtimeMs).toBe(before.mtimeMs);

    // Other options over an existing dataset, or a folder that is not ours: refused, nothing touched.
    await expect(generateDemoDataset({ root: first.root, ...SMALL, seed: 5 })).rejects.toMatchObject({ code: 'IO', parameter: 'root' });
    const foreign = path.join(tmp, 'foreign');
    await fs.mkdir(foreign);
    await fs.writeFile(path.join(foreign, 'keep.txt'), 'mine');
    await expect(generateDemoDataset({ root: foreign, ...SMALL })).rejects.toMatchObject({ code: 'IO', parameter: 'root' });
    expect(await fs.readdir(foreign)).toEqual(['keep.txt']);

    // An empty folder is filled.
    const empty = path.join(tmp, 'empty');
    await fs.mkdir(empty);
    const filled = await generateDemoDataset({ root: empty, ...SMALL, classes: ['nut'], trainPerClass: 1, testGoodPerClass: 0, testDefectPerClass: 3 });
    expect(filled.images).toBe(4);
    expect((await listFiles(empty)).filter((f) => f.endsWith('.png'))).toHaveLength(7);
  });

  test('an interrupted run leaves neither the dataset nor its temporary folder', async () => {
    const original = render.renderDemoSample;
    const spy = jest.spyOn(render, 'renderDemoSample');
    let calls = 0;
    spy.mockImplementation(async (spec) => {
      if (++calls === 6) throw new Error('simulated crash');
      return original(spec);
    });
    const parent = path.join(tmp, 'interrupted');
    await fs.mkdir(parent);
    try {
      await expect(generateDemoDataset({ root: path.join(parent, 'ds'), ...SMALL, classes: ['tile'] }))
        .rejects.toMatchObject({ code: 'IO', parameter: 'root' });
    } finally {
      spy.mockRestore();
    }
    expect(calls).toBeGreaterThanOrEqual(6);
    expect(await fs.readdir(parent)).toEqual([]);
  });

  test('invalid options throw HgadArgumentError naming the option', async () => {
    const root = path.join(tmp, 'never');
    const cases: Array<[unknown, string]> = [
      [undefined, 'options'],
      [{}, 'root'],
      [{ root: '' }, 'root'],
      [{ root, seed: -1 }, 'seed'],
      [{ root, seed: 1.5 }, 'seed'],
      [{ root, size: 16 }, 'size'],
      [{ root, size: '256' }, 'size'],
      [{ root, classes: [] }, 'classes'],
      [{ root, classes: 'pill' }, 'classes'],
      [{ root, classes: ['pill', 'bottle'] }, 'classes[1]'],
      [{ root, classes: ['pill', 'pill'] }, 'classes[1]'],
      [{ root, trainPerClass: 0 }, 'trainPerClass'],
      [{ root, testGoodPerClass: -1 }, 'testGoodPerClass'],
      [{ root, testDefectPerClass: Number.NaN }, 'testDefectPerClass'],
      [{ root, concurrency: 0 }, 'concurrency'],
    ];
    for (const [options, parameter] of cases) {
      const call = generateDemoDataset(options as never);
      await expect(call).rejects.toBeInstanceOf(HgadArgumentError);
      await expect(call).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', parameter });
    }
    await expect(fs.stat(root)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  test('describeDemoDataset names the root, the classes and the counts', () => {
    const text = describeDemoDataset(first);
    expect(text).toContain(first.root);
    for (const cls of DEMO_CLASSES) expect(text).toContain(cls);
    expect(text).toContain(`${first.images} images`);
    expect(text).toContain(`${first.masks} pixel masks`);
    expect(text).not.toContain('\n');
  });
});

describe('renderDemoSample', () => {
  test('the defect is visible, and the change is concentrated inside its mask', async () => {
    for (const cls of DEMO_CLASSES) {
      for (const label of first.defects[cls] ?? []) {
        for (const index of [0, 1]) {
          const spec = { className: cls, split: 'test' as const, label, index, seed: 3, size: 256 };
          const withDefect = await renderDemoSample(spec);
          const without = await renderDemoSample({ ...spec, withDefect: false });
          expect(without.mask).toEqual(withDefect.mask);
          const a = await rawPixels(withDefect.image);
          const b = await rawPixels(without.image);
          const m = await rawPixels(withDefect.mask as Buffer);
          let inside = 0, outside = 0, nIn = 0;
          for (let p = 0; p < m.data.length; p++) {
            let d = 0;
            for (let c = 0; c < 3; c++) d += Math.abs((a.data[3 * p + c] ?? 0) - (b.data[3 * p + c] ?? 0));
            if (m.data[p] === 255) { inside += d / 3; nIn++; } else outside += d / 3;
          }
          const where = `${cls}/${label}/${index}`;
          expect(Math.abs(nIn / m.data.length - withDefect.area)).toBeLessThan(1e-9);
          // Mean change inside the mask: clearly visible (grey levels out of 255).
          expect([where, inside / nIn > 18]).toEqual([where, true]);
          // Nearly all of the change lies inside the mask; outside only anti-aliased edge pixels.
          expect([where, inside / (inside + outside) > 0.9]).toEqual([where, true]);
          expect([where, outside / (m.data.length - nIn) < 0.5]).toEqual([where, true]);
        }
      }
    }
  });

  test('good samples have no mask; unknown labels are refused', async () => {
    const good = await renderDemoSample({ className: 'carpet', split: 'train', label: 'good', index: 0, seed: 0, size: 64 });
    expect(good.mask).toBeNull();
    expect(good.area).toBe(0);
    await expect(renderDemoSample({ className: 'carpet', split: 'test', label: 'crack', index: 0, seed: 0, size: 64 }))
      .rejects.toBeInstanceOf(HgadError);
    await expect(renderDemoSample({ className: 'bottle', split: 'test', label: 'good', index: 0, seed: 0, size: 64 }))
      .rejects.toMatchObject({ parameter: 'className' });
  });

  test('contact sheet of images and masks (written for a person to look at)', async () => {
    // Per class: two good images, then each defect's image and its mask in red over it.
    const size = 192, gap = 4;
    const tiles: OverlayOptions[] = [];
    let row = 0, cols = 0;
    for (const cls of DEMO_CLASSES) {
      const cells: Buffer[] = [];
      for (const index of [0, 1]) cells.push((await renderDemoSample({ className: cls, split: 'train', label: 'good', index, seed: 0, size })).image);
      for (const label of first.defects[cls] ?? []) {
        const s = await renderDemoSample({ className: cls, split: 'test', label, index: 0, seed: 0, size });
        const alpha = await sharp(s.mask as Buffer).linear(0.6, 0).toColourspace('b-w').png().toBuffer();
        const red = await sharp({ create: { width: size, height: size, channels: 3, background: '#ff0000' } }).joinChannel(alpha).png().toBuffer();
        cells.push(s.image, await sharp(s.image).composite([{ input: red }]).png().toBuffer());
      }
      cells.forEach((input, col) => tiles.push({ input, left: col * (size + gap), top: row * (size + gap) }));
      cols = Math.max(cols, cells.length);
      row++;
    }
    const out = path.join(os.tmpdir(), 'hgad-demo-preview.png');
    await sharp({ create: { width: cols * (size + gap), height: row * (size + gap), channels: 3, background: '#ffffff' } })
      .composite(tiles).png().toFile(out);
    const meta = await sharp(out).metadata();
    expect([meta.width, meta.height]).toEqual([cols * (size + gap), DEMO_CLASSES.length * (size + gap)]);
  });
});
