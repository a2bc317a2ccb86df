// The validation split of bench:quality (benchmarks/quality-validation.ts), built from a few real
// training images: every kind present with its masks, and the 'band' kind what its settings rely on -
// a full-width band along the top or bottom edge, the rest of the image untouched.
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import sharp from 'sharp';

import { buildValidationSplit, SYNTHETIC_KINDS } from '../benchmarks/quality-validation';
import { Dataset, openDataset } from '../lib/data';

const DATA = resolve(__dirname, '..', '..', 'shared', 'data');
const present = existsSync(join(DATA, 'magnetic_tile'));
if (!present) console.warn(`skipping the validation-split tests: ${DATA}/magnetic_tile is missing`);
const maybe = present ? describe : describe.skip;

async function grey(path: string): Promise<{ data: Buffer; width: number; height: number }> {
  const { data, info } = await sharp(path).greyscale().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

maybe('validation split', () => {
  let root: string;
  const HELD = 6;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'hgad-validation-split-'));
    const full = await openDataset({ root: DATA, layout: 'mvtec' });
    // 12 training images, half of them held out.
    const few: Dataset = { ...full, samples: (split, c) => (split === 'train' ? full.samples(split, c).slice(0, 2 * HELD) : []) };
    const split = await buildValidationSplit(few, ['magnetic_tile'], join(root, 'split'), 1234, 0.5);
    expect(split).toEqual({ root: join(root, 'split'), trainImages: HELD, testImages: 5 * HELD });
  }, 120000);

  afterAll(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  test('every kind has one defect copy and one mask per held-out normal image', async () => {
    const base = join(root, 'split', 'magnetic_tile');
    expect(await readdir(join(base, 'test', 'good'))).toHaveLength(HELD);
    for (const kind of Object.values(SYNTHETIC_KINDS)) {
      expect({ kind, images: (await readdir(join(base, 'test', kind))).length }).toEqual({ kind, images: HELD });
      expect({ kind, masks: (await readdir(join(base, 'ground_truth', kind))).length }).toEqual({ kind, masks: HELD });
    }
  });

  test('a band spans the full width from the top or bottom edge, 10-47% deep, and leaves the rest of the image as it was', async () => {
    const base = join(root, 'split', 'magnetic_tile');
    const goods = (await readdir(join(base, 'test', 'good'))).sort();
    for (const good of goods) {
      const stem = good.replace(/\.[^.]+$/, '');
      const original = await grey(join(base, 'test', 'good', good));
      const banded = await grey(join(base, 'test', 'band', `${stem}.png`));
      const mask = await grey(join(base, 'ground_truth', 'band', `${stem}_mask.png`));
      const { width: w, height: h } = original;
      expect([banded.width, banded.height, mask.width, mask.height]).toEqual([w, h, w, h]);
      const fromTop = mask.data[0] !== 0;
      let changedInside = 0, inside = 0, maskedOutside = 0, changedOutside = 0, minDepth = h, maxDepth = 0;
      for (let x = 0; x < w; x++) {
        // The band in this column: the rows from the edge up to its boundary, and nothing else.
        let depth = 0;
        while (depth < h && mask.data[(fromTop ? depth : h - 1 - depth) * w + x] !== 0) depth++;
        minDepth = Math.min(minDepth, depth);
        maxDepth = Math.max(maxDepth, depth);
        for (let k = 0; k < h; k++) {
          const i = (fromTop ? k : h - 1 - k) * w + x;
          if (k < depth) {
            inside++;
            if (Math.abs(banded.data[i]! - original.data[i]!) > 2) changedInside++;
          } else {
            if (mask.data[i] !== 0) maskedOutside++;
            // Past the soft edge (two rows), the pixels are the original's.
            if (k > depth + 2 && banded.data[i] !== original.data[i]) changedOutside++;
          }
        }
      }
      expect({ good, minDepth: minDepth / h >= 0.1, maxDepth: maxDepth / h <= 0.47, maskedOutside, changedOutside })
        .toEqual({ good, minDepth: true, maxDepth: true, maskedOutside: 0, changedOutside: 0 });
      // Another tile's rows: most of the band's pixels differ from this tile's.
      expect(changedInside / inside).toBeGreaterThan(0.5);
    }
  }, 60000);
});
