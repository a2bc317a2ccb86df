// Streams samples as fixed-size pixel batches. Decoding runs ahead of the consumer with two bounds, so
// memory stays flat however large the dataset is: at most `concurrency` decodes at once, and at most
// two batches' worth of images started (decoding or decoded) that have not yet been handed out.
import * as os from 'os';
import { HgadArgumentError, HgadError } from '../errors';
import { checkKeys, isInteger } from '../validate';
import { loadImage, loadMask } from './image';
import { shuffled } from './random';
import { checkSize } from './size';
import { Sample } from './types';

/** An image that could not be decoded (with onError 'collect'). */
export interface FailedSample {
  /** Position in the loader's order (the samples' order unless shuffled). */
  index: number;
  sample: Sample;
  error: HgadError;
}

export interface ImageBatch {
  samples: Sample[];
  /** Position of each image in the loader's order (the samples' order unless shuffled). */
  indices: number[];
  /** Images in this batch (batchSize, or fewer for the last one, or fewer by the failed ones). */
  batch: number;
  /** With onError 'collect': this batch's images that could not be decoded (not in `samples`). */
  failed: FailedSample[];
  /** batch * height * width * 3 bytes, RGB, NHWC. */
  pixels: Uint8Array;
  width: number;
  height: number;
  /** batch * maskHeight * maskWidth bytes of 0 or 255 when maskSize was given, otherwise null. */
  masks: Uint8Array | null;
  maskWidth: number;
  maskHeight: number;
}

/** The loader's state, reported to `monitor` each time a decode starts or ends and a batch is handed out. */
export interface LoaderState {
  /** Decodes running now (never above `concurrency`). */
  inFlight: number;
  /** Images started (running or done) that are not yet in a yielded batch (never above 2 * batchSize). */
  buffered: number;
}

export interface ImageBatchOptions {
  batchSize: number;
  /** Image size after resizing: a side length or { width, height }. */
  size: number | { width: number; height: number };
  /** Also load the ground-truth masks at this size (all zero where maskPath is null). */
  maskSize?: number | { width: number; height: number };
  /** Decodes at once; default 2 * available cores. sharp runs them on libuv's pool (UV_THREADPOOL_SIZE, 4 by default). */
  concurrency?: number;
  /** Shuffle the samples with this seed (same seed, same order); default: keep their order. */
  shuffleSeed?: number;
  /** Leave out a last batch smaller than batchSize (default false). */
  dropLast?: boolean;
  /**
   * 'throw' (default): an image that cannot be decoded ends the stream with its error. 'collect': it is
   * left out of its batch and listed in the batch's `failed`; a batch may then hold no image at all.
   */
  onError?: 'throw' | 'collect';
  /** Called on every decode start and end and batch hand-out, for progress displays and tests of the bounds above. */
  monitor?: (state: LoaderState) => void;
}

interface Decoded {
  pixels: Uint8Array;
  mask: Uint8Array | null;
  error?: HgadError;
}

interface Slot {
  promise: Promise<Decoded>;
  resolve(value: Decoded): void;
  reject(error: unknown): void;
}

function slot(): Slot {
  let resolve!: (value: Decoded) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<Decoded>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Handled where it is awaited; this keeps an abandoned generator from raising unhandled rejections.
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

function checkSamples(samples: unknown, withMasks: boolean): Sample[] {
  if (!Array.isArray(samples)) throw new HgadArgumentError('samples', 'an array of samples', samples);
  samples.forEach((s: unknown, i) => {
    const o = s as Partial<Sample> | null;
    if (typeof o !== 'object' || o === null || typeof o.path !== 'string' || o.path === '') {
      throw new HgadArgumentError(`samples[${i}]`, 'a sample with a path', s);
    }
    if (withMasks && o.maskPath !== null && typeof o.maskPath !== 'string') {
      throw new HgadArgumentError(`samples[${i}].maskPath`, 'a path or null', o.maskPath);
    }
  });
  return samples as Sample[];
}

export async function* imageBatches(samples: Sample[], options: ImageBatchOptions): AsyncGenerator<ImageBatch> {
  if (typeof options !== 'object' || options === null) throw new HgadArgumentError('options', 'an object { batchSize, size, ... }', options);
  checkKeys('options', options, ['batchSize', 'size', 'maskSize', 'concurrency', 'shuffleSeed', 'dropLast', 'monitor', 'onError']);
  const { batchSize, concurrency = 2 * os.availableParallelism(), shuffleSeed, dropLast = false, monitor, onError = 'throw' } = options;
  if (!isInteger(batchSize) || batchSize < 1 || batchSize > 65536) throw new HgadArgumentError('options.batchSize', 'an integer in [1, 65536]', batchSize);
  const size = checkSize('options.size', options.size);
  const maskSize = options.maskSize === undefined ? null : checkSize('options.maskSize', options.maskSize);
  if (!isInteger(concurrency) || concurrency < 1 || concurrency > 1024) throw new HgadArgumentError('options.concurrency', 'an integer in [1, 1024]', concurrency);
  if (shuffleSeed !== undefined && !isInteger(shuffleSeed)) throw new HgadArgumentError('options.shuffleSeed', 'an integer', shuffleSeed);
  if (typeof dropLast !== 'boolean') throw new HgadArgumentError('options.dropLast', 'a boolean', dropLast);
  if (onError !== 'throw' && onError !== 'collect') throw new HgadArgumentError('options.onError', "'throw' or 'collect'", onError);
  if (monitor !== undefined && typeof monitor !== 'function') throw new HgadArgumentError('options.monitor', 'a function', monitor);
  checkSamples(samples, maskSize !== null);

  const order = shuffleSeed === undefined ? samples.slice() : shuffled(samples, shuffleSeed >>> 0);
  const total = dropLast ? order.length - (order.length % batchSize) : order.length;
  const limit = 2 * batchSize;
  const slots = new Map<number, Slot>();
  const slotOf = (i: number): Slot => {
    let s = slots.get(i);
    if (s === undefined) {
      s = slot();
      slots.set(i, s);
    }
    return s;
  };
  let started = 0;
  let consumed = 0;
  let inFlight = 0;
  let closed = false;
  // A throwing monitor must not become an unhandled rejection inside a decode callback: keep its error
  // and raise it from the generator.
  let monitorError: { error: unknown } | null = null;
  const report = (): void => {
    if (monitor === undefined || monitorError !== null) return;
    try {
      monitor({ inFlight, buffered: started - consumed });
    } catch (error) {
      monitorError = { error };
    }
  };

  const decode = async (sample: Sample): Promise<Decoded> => {
    try {
      const [image, mask] = await Promise.all([
        loadImage(sample.path, size, sample.source),
        maskSize === null ? Promise.resolve(null) : loadMask(sample.maskPath, maskSize),
      ]);
      return { pixels: image.pixels, mask };
    } catch (e) {
      if (onError === 'throw') throw e;
      const error = e instanceof HgadError ? e : new HgadError('INVALID_ARGUMENT', `Cannot decode ${sample.path}: ${String(e)}`, 'path');
      return { pixels: new Uint8Array(0), mask: null, error };
    }
  };
  const pump = (): void => {
    while (!closed && started < total && inFlight < concurrency && started - consumed < limit) {
      const s = slotOf(started);
      const sample = order[started] as Sample;
      started += 1;
      inFlight += 1;
      report();
      decode(sample).then(s.resolve, s.reject).finally(() => {
        inFlight -= 1;
        report();
        pump();
      });
    }
  };

  const imageBytes = size.width * size.height * 3;
  const maskBytes = maskSize === null ? 0 : maskSize.width * maskSize.height;
  try {
    for (let first = 0; first < total; first += batchSize) {
      const count = Math.min(batchSize, total - first);
      pump();
      const decoded: Decoded[] = [];
      for (let b = 0; b < count; b++) {
        decoded.push(await slotOf(first + b).promise);
        if (monitorError !== null) throw (monitorError as { error: unknown }).error;
        slots.delete(first + b);
      }
      const indices: number[] = [];
      const failed: FailedSample[] = [];
      decoded.forEach((d, b) => {
        if (d.error) failed.push({ index: first + b, sample: order[first + b]!, error: d.error });
        else indices.push(first + b);
      });
      const pixels = new Uint8Array(indices.length * imageBytes);
      const masks = maskSize === null ? null : new Uint8Array(indices.length * maskBytes);
      let b = 0;
      for (const d of decoded) {
        if (d.error) continue;
        pixels.set(d.pixels, b * imageBytes);
        if (masks !== null && d.mask !== null) masks.set(d.mask, b * maskBytes);
        b += 1;
      }
      consumed = first + count;
      report();
      pump();
      yield {
        samples: indices.map((i) => order[i]!), indices, batch: indices.length, failed, pixels, width: size.width, height: size.height,
        masks, maskWidth: maskSize?.width ?? 0, maskHeight: maskSize?.height ?? 0,
      };
    }
  } finally {
    closed = true;
  }
}
