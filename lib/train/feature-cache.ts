// The backbone is frozen, so an image's features are the same in every pass: when every training
// image's features fit in the budget, they are kept after the first pass and later passes skip
// decoding and the backbone. Batches are assembled by copying each image's slice (no arithmetic).
import type { FeatureLevel } from '../features/backbone';

export interface LevelShape {
  height: number;
  width: number;
  channels: number;
}

export class FeatureCache {
  private readonly store = new Map<number, Float32Array[]>();

  constructor(private readonly shapes: LevelShape[]) {}

  static bytesPerImage(shapes: LevelShape[]): number {
    return shapes.reduce((sum, s) => sum + s.height * s.width * s.channels * 4, 0);
  }

  has(index: number): boolean {
    return this.store.has(index);
  }

  /** Keeps image b of a batch under `index` (a copy: the batch's arrays are released). */
  put(index: number, levels: FeatureLevel[], b: number): void {
    this.store.set(index, levels.map((lv) => {
      const n = lv.height * lv.width * lv.channels;
      return lv.data.slice(b * n, (b + 1) * n);
    }));
  }

  /** The batch of the given images, level by level, NHWC. */
  batch(indices: number[]): FeatureLevel[] {
    return this.shapes.map((s, l) => {
      const n = s.height * s.width * s.channels;
      const data = new Float32Array(indices.length * n);
      indices.forEach((idx, b) => data.set(this.store.get(idx)![l]!, b * n));
      return { data, batch: indices.length, height: s.height, width: s.width, channels: s.channels };
    });
  }
}
