// Dataset reading and image loading for the hgad pipeline.
export type { Dataset, DatasetLayout, Sample, Split } from './types';
export { openDataset } from './dataset';
export type { OpenDatasetOptions } from './dataset';
export { unionDatasets } from './union';
export type { UnionOptions } from './union';
export { splitHoldout } from './holdout';
export { loadImage, loadMask, MAX_IMAGE_BYTES } from './image';
export { HgadImageError, MAX_IMAGE_PIXELS } from './decode-error';
export type { LoadedImage } from './image';
export type { ImageSize } from './size';
export { imageBatches } from './batches';
export type { ImageBatch, ImageBatchOptions, LoaderState, FailedSample } from './batches';
export type { RawImage, ImageSource } from './source';
export { IMAGE_EXTENSIONS } from './files';
