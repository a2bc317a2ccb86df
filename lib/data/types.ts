// The shapes shared by the dataset readers, the union and the batch loader.
import type { ImageSource } from './source';

/** A folder layout hgad can read. */
export type DatasetLayout = 'mvtec' | 'visa' | 'btad' | 'mvtec3d' | 'generic';

export type Split = 'train' | 'test';

/** One image of a dataset. Paths are absolute. */
export interface Sample {
  /** The file; for an in-memory image (`source`), a name used in messages. */
  path: string;
  /** Pixels held in memory, read instead of `path`. */
  source?: ImageSource;
  className: string;
  split: Split;
  /** 'good' for normal images; otherwise the defect folder name ('anomaly' for VisA, 'ko' for BTAD). */
  defect: string;
  /** 0 normal, 1 anomalous. */
  label: 0 | 1;
  /** Ground-truth mask; null for a normal image, or for a defect image whose mask is not available. */
  maskPath: string | null;
}

export interface Dataset {
  /** The absolute root folder; for a union, the roots joined with path.delimiter (see `roots`). */
  root: string;
  /** Every root folder the samples come from. */
  roots: string[];
  layout: DatasetLayout | 'union';
  /** Class names, sorted (a union keeps the order of its datasets). */
  classes: string[];
  /** The samples of a split, of one class or of all classes in `classes` order; a fresh array each call. */
  samples(split: Split, className?: string): Sample[];
}

/** What a layout reader produces for one class. */
export interface ClassData {
  name: string;
  train: Sample[];
  test: Sample[];
}
