// Heatmap and overlay PNGs for scored images, written next to each other in one folder. The colour
// range is fixed per class by the calibrated threshold (threshold at 2/3 of the scale; for distance maps
// the scale runs from half the threshold), so colours mean the same thing across images; without
// calibration the range is the image's own.
import { mkdir, rename, writeFile } from 'node:fs/promises';
import * as path from 'node:path';

import { loadImage } from '../data';
import { HgadArgumentError, HgadError } from '../errors';
import { heatmapPng, overlayPng } from './heatmap';
import type { AnomalyResult } from './scorer';

/**
 * Distance maps ('nearest') never reach 0: normal texture sits at about 0.7 of a normal image's max on
 * the shared data's classes, so their scale starts at half the threshold and normal areas stay dark.
 */
export function heatmapRange(result: Pick<AnomalyResult, 'threshold' | 'imageScore'> & { maps?: AnomalyResult['maps'] }):
  { min: number; max: number } {
  const nearest = result.maps === 'nearest';
  if (result.threshold !== null && result.threshold > 0) return { min: nearest ? 0.5 * result.threshold : 0, max: 1.5 * result.threshold };
  const max = result.imageScore > 0 ? result.imageScore : 1;
  return { min: nearest ? 0.5 * max : 0, max };
}

async function writeAtomic(file: string, data: Buffer): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, data);
    await rename(tmp, file);
  } catch (e) {
    throw new HgadError('IO', `Cannot write ${file}: ${(e as Error).message}`, 'heatmaps');
  }
}

/** Writes <name>_heatmap.png and <name>_overlay.png into dir; returns their paths. */
export async function writeHeatmaps(result: AnomalyResult, dir: string, name = path.parse(result.path ?? result.id).name): Promise<{ heatmap: string; overlay: string }> {
  if (result.path === null) {
    throw new HgadArgumentError('result.path', 'the result of an image file (the overlay reads the image again); use heatmapPng for in-memory images', null);
  }
  await mkdir(dir, { recursive: true });
  const range = heatmapRange(result);
  const heatmap = path.join(dir, `${name}_heatmap.png`);
  const overlay = path.join(dir, `${name}_overlay.png`);
  await writeAtomic(heatmap, await heatmapPng(result.map, result.height, result.width, range));
  const image = await loadImage(result.path, { width: result.width, height: result.height });
  await writeAtomic(overlay, await overlayPng(image.pixels, result.width, result.height, result.map, range));
  return { heatmap, overlay };
}
