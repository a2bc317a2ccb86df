// The validation split of bench:quality, cut from the TRAINING images only (normal images): per class,
// a seeded 20% is held out; the rest is the training set. The held-out normals become the test "good"
// images, and a copy of each gets a synthetic defect (a patch cut from another held-out normal image of
// the same class, brightness changed, pasted at a random place; CutPaste-style) with its mask. Settings
// are chosen on this split; the real test split is only used by the final run.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

import sharp from 'sharp';

import type { Dataset, Sample } from '../lib/data';
import { mulberry32, shuffled } from '../lib/data/random';

export interface ValidationSplit {
  /** An MVTec-layout tree: <class>/train/good, <class>/test/{good,synthetic}, <class>/ground_truth/synthetic. */
  root: string;
  trainImages: number;
  testImages: number;
}

async function syntheticDefect(target: Sample, donor: Sample, rand: () => number, image: string, mask: string): Promise<void> {
  const meta = await sharp(target.path).metadata();
  const w = meta.width!, h = meta.height!;
  const side = Math.max(4, Math.round(Math.min(w, h) * (0.06 + 0.12 * rand())));
  const pw = side, ph = Math.max(4, Math.round(side * (0.5 + rand())));
  const dm = await sharp(donor.path).metadata();
  const dw = dm.width!, dh = dm.height!;
  const ew = Math.min(pw, dw), eh = Math.min(ph, dh);
  const patch = await sharp(donor.path)
    .extract({ left: Math.floor(rand() * (dw - ew + 1)), top: Math.floor(rand() * (dh - eh + 1)), width: ew, height: eh })
    .resize(pw, ph, { fit: 'fill' })
    .modulate({ brightness: rand() < 0.5 ? 0.45 + 0.2 * rand() : 1.4 + 0.4 * rand() })
    .removeAlpha()
    .toColourspace(meta.channels === 1 || meta.space === 'b-w' ? 'b-w' : 'srgb')
    .png()
    .toBuffer();
  const left = Math.floor(rand() * (w - pw + 1)), top = Math.floor(rand() * (h - ph + 1));
  await sharp(target.path).composite([{ input: patch, left, top }]).png().toFile(image);
  await sharp({ create: { width: w, height: h, channels: 3, background: { r: 0, g: 0, b: 0 } } })
    .composite([{ input: { create: { width: pw, height: ph, channels: 3, background: { r: 255, g: 255, b: 255 } } }, left, top }])
    .greyscale()
    .png()
    .toFile(mask);
}

/** Builds the split under `root` (emptied first). */
export async function buildValidationSplit(dataset: Dataset, classes: string[], root: string, seed: number,
  fraction = 0.2): Promise<ValidationSplit> {
  await fs.rm(root, { recursive: true, force: true });
  let trainImages = 0, testImages = 0;
  for (const c of classes) {
    const all = shuffled(dataset.samples('train', c), seed * 7919 + c.length);
    const n = Math.max(2, Math.round(all.length * fraction));
    const held = all.slice(0, n), train = all.slice(n);
    const dirs = ['train/good', 'test/good', 'test/synthetic', 'ground_truth/synthetic'].map((d) => path.join(root, c, d));
    for (const d of dirs) await fs.mkdir(d, { recursive: true });
    for (const s of train) await fs.symlink(s.path, path.join(dirs[0]!, path.basename(s.path)));
    const rand = mulberry32(seed * 31 + 7);
    for (let i = 0; i < held.length; i++) {
      const s = held[i]!;
      const stem = `${i.toString().padStart(4, '0')}`;
      await fs.symlink(s.path, path.join(dirs[1]!, `${stem}${path.extname(s.path)}`));
      await syntheticDefect(s, held[(i + 1) % held.length]!, rand, path.join(dirs[2]!, `${stem}.png`),
        path.join(dirs[3]!, `${stem}_mask.png`));
    }
    trainImages += train.length;
    testImages += 2 * held.length;
  }
  return { root, trainImages, testImages };
}
