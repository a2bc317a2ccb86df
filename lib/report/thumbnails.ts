// The three pictures of a grid cell as PNG data URIs: the test image, the image with its ground-truth
// mask (tinted, with an outline), and the image with the anomaly heatmap blended over it. All pixel
// work is sharp's (libvips) or the native colormap's; nothing here loops over pixels.
import sharp from 'sharp';
import type { Sharp } from 'sharp';

import { loadImage, loadMask } from '../data';
import type { EvaluatedImage } from '../eval/run';
import { overlayPng } from '../score/heatmap';
import { heatmapRange } from '../score/heatmap-files';

export interface CellPictures {
  image: string;
  /** null: a normal image (nothing to show) or an anomalous one whose mask is not available. */
  mask: string | null;
  heatmap: string;
}

const MASK_TINT = { r: 255, g: 40, b: 40 };
const MASK_OUTLINE = { r: 255, g: 235, b: 0 };
const TINT_ALPHA = 0.45;

function dataUri(png: Buffer): string {
  return `data:image/png;base64,${png.toString('base64')}`;
}

// Palette PNGs are a third of the size of full-colour ones and look the same at thumbnail size.
const encode = (image: Sharp): Promise<Buffer> => image.png({ palette: true, compressionLevel: 9 }).toBuffer();

/** A solid colour whose alpha is the given single-channel raw image: RGBA bytes for a composite. */
async function coloured(alpha: Buffer, size: number, colour: { r: number; g: number; b: number }): Promise<Buffer> {
  return sharp({ create: { width: size, height: size, channels: 3, background: colour } })
    .joinChannel(alpha, { raw: { width: size, height: size, channels: 1 } })
    .raw()
    .toBuffer();
}

async function maskOverlay(rgb: Uint8Array, maskPath: string, size: number): Promise<Buffer> {
  const mask = await loadMask(maskPath, { width: size, height: size });
  const raw1 = { raw: { width: size, height: size, channels: 1 as const } };
  // extractChannel: sharp writes a one-band raw input back out as sRGB (three bands) otherwise.
  const tint = await sharp(mask, raw1).linear(TINT_ALPHA, 0).extractChannel(0).raw().toBuffer();
  // The band between the mask grown and shrunk by one pixel: a two-pixel outline across the edge.
  // Both operators are used so the band does not depend on which one libvips treats as growing white.
  const morph = (op: 'dilate' | 'erode'): Promise<Buffer> => sharp(mask, raw1)[op](1).extractChannel(0).raw().toBuffer();
  const [grown, shrunk] = await Promise.all([morph('dilate'), morph('erode')]);
  const edge = await sharp(grown, raw1).boolean(shrunk, 'eor', raw1).extractChannel(0).raw().toBuffer();
  const layer = { raw: { width: size, height: size, channels: 4 as const } };
  return encode(sharp(rgb, { raw: { width: size, height: size, channels: 3 } })
    .composite([
      { input: await coloured(tint, size, MASK_TINT), ...layer },
      { input: await coloured(edge, size, MASK_OUTLINE), ...layer },
    ]));
}

/** Pictures of one evaluated image at size x size pixels (the image is resized without keeping its aspect, as the pipeline does). */
export async function cellPictures(item: EvaluatedImage, size: number): Promise<CellPictures> {
  const { sample, result } = item;
  const small = await loadImage(sample.path, { width: size, height: size });
  const image = await encode(sharp(small.pixels, { raw: { width: size, height: size, channels: 3 } }));
  const mask = sample.label === 1 && sample.maskPath !== null ? await maskOverlay(small.pixels, sample.maskPath, size) : null;
  const { width, height } = result;
  const atMap = width === size && height === size ? small : await loadImage(sample.path, { width, height });
  const overlay = await overlayPng(atMap.pixels, width, height, result.map, heatmapRange(result));
  const heatmap = await encode(sharp(overlay).resize(size, size, { fit: 'fill' }));
  return { image: dataUri(image), mask: mask && dataUri(mask), heatmap: dataUri(heatmap) };
}
