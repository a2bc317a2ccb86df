// The anomaly maps a /v1/score answer can carry, on request: the jet-coloured heatmap as a PNG (what
// a person looks at; the same picture `hgad score --heatmaps` writes) and the map's exact values as
// little-endian float32 (what a program thresholds or measures), both base64 in the JSON, or the PNG
// alone as the whole answer when the client accepts image/png (see accept.ts). Colouring is native
// and PNG encoding is sharp's (libvips), both on libuv's pool: the event loop only base64-encodes.
import { endianness } from 'node:os';

import { HgadArgumentError } from '../errors';
import { heatmapRange } from '../score/heatmap-files';
import { heatmapPng } from '../score/heatmap';
import type { AnomalyResult } from '../score/scorer';
import { inOwnTurn } from './turns';

export type HeatmapFormat = 'png' | 'float32';

const FORMATS: readonly HeatmapFormat[] = ['png', 'float32'];

/** `heatmap` as the query or a form field gives it: false/0, true/1 (= png), png, float32 or png,float32. */
export function parseHeatmap(value: string | boolean | undefined): HeatmapFormat[] {
  if (value === undefined || value === false || value === 'false' || value === '0') return [];
  if (value === true || value === 'true' || value === '1') return ['png'];
  const parts = value.split(',').map((s) => s.trim());
  const out: HeatmapFormat[] = [];
  for (const p of parts) {
    if (!(FORMATS as readonly string[]).includes(p) || out.includes(p as HeatmapFormat)) {
      throw new HgadArgumentError('heatmap', 'false, true, png, float32 or png,float32', value);
    }
    out.push(p as HeatmapFormat);
  }
  return out;
}

/** The value range the PNG's colour scale spans: the first colour at min, the last at max. */
export interface HeatmapRange {
  min: number;
  max: number;
}

/** The scored result's colour range: [0, 1.5 x its threshold] (the threshold 2/3 up the scale), else [0, its score]. */
export const rangeOf: (result: AnomalyResult) => HeatmapRange = heatmapRange;

/** The map's values as little-endian float32 bytes, base64 (row-major, mapHeight x mapWidth). */
export function float32Base64(map: Float32Array): string {
  const bytes = Buffer.from(map.buffer, map.byteOffset, map.byteLength);
  if (endianness() === 'LE') return bytes.toString('base64');
  return Buffer.from(bytes).swap32().toString('base64');
}

/** The coloured heatmap as PNG bytes. */
export function pngOf(result: AnomalyResult, range: HeatmapRange): Promise<Buffer> {
  return heatmapPng(result.map, result.height, result.width, range);
}

/** The JSON fields a result gains for the formats asked for (the base64 text built in a loop turn of its own). */
export async function heatmapFields(result: AnomalyResult, formats: readonly HeatmapFormat[]): Promise<Record<string, unknown>> {
  const range = rangeOf(result);
  const png = formats.includes('png') ? await pngOf(result, range) : null;
  return inOwnTurn(() => ({
    ...(png ? { heatmap: png.toString('base64'), heatmapRange: range } : {}),
    ...(formats.includes('float32') ? { map: float32Base64(result.map) } : {}),
  }));
}

/**
 * Response headers of an image/png answer: the result's fields, text percent-encoded (ids and class
 * names may hold any character; a header may not).
 */
export function resultHeaders(result: AnomalyResult, range: HeatmapRange): Record<string, string> {
  return {
    'x-hgad-id': encodeURIComponent(result.id),
    'x-hgad-image-score': String(result.imageScore),
    'x-hgad-is-anomaly': String(result.isAnomaly),
    'x-hgad-threshold': String(result.threshold),
    'x-hgad-threshold-source': String(result.thresholdSource),
    'x-hgad-class': encodeURIComponent(result.className),
    'x-hgad-class-confidence': String(result.classConfidence),
    'x-hgad-class-source': result.classSource,
    'x-hgad-heatmap-min': String(range.min),
    'x-hgad-heatmap-max': String(range.max),
  };
}
