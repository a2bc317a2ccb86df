// openDataset: reads one dataset folder into a Dataset (see types.ts) after checking it is usable.
import * as path from 'path';
import { HgadArgumentError, HgadError } from '../errors';
import { readBtad } from './btad';
import { detectLayout, looksLikeMvtec } from './detect';
import { isDirectory } from './files';
import { readGeneric } from './generic';
import { readMvtec } from './mvtec';
import { readMvtec3d } from './mvtec3d';
import { readVisa } from './visa';
import { checkKeys } from '../validate';
import { ClassData, Dataset, DatasetLayout, Sample, Split } from './types';

export interface OpenDatasetOptions {
  /** The dataset folder. */
  root: string;
  /** The folder layout; 'auto' (default) detects it (rules in detect.ts). */
  layout?: DatasetLayout | 'auto';
  /** Read only these classes (default: all). */
  classes?: string[];
}

const LAYOUTS: readonly (DatasetLayout | 'auto')[] = ['auto', 'mvtec', 'visa', 'btad', 'mvtec3d', 'generic'];
const READERS: Record<DatasetLayout, (root: string, select: (all: string[]) => string[]) => Promise<ClassData[]>> = {
  mvtec: readMvtec, visa: readVisa, btad: readBtad, mvtec3d: readMvtec3d, generic: readGeneric,
};

function classSelector(wanted: string[] | undefined): (all: string[]) => string[] {
  return (all) => {
    if (wanted === undefined) return all;
    wanted.forEach((name, i) => {
      if (!all.includes(name)) throw new HgadArgumentError(`classes[${i}]`, `one of: ${all.join(', ')}`, name);
    });
    return all.filter((c) => wanted.includes(c));
  };
}

function checkClasses(root: string, layout: DatasetLayout, data: ClassData[]): void {
  if (data.length === 0) throw new HgadError('INVALID_ARGUMENT', `No classes found in ${root} (layout ${layout})`, 'root');
  for (const c of data) {
    const where = layout === 'visa' ? `${path.join(root, 'split_csv', '1cls.csv')} (object ${c.name})`
      : path.join(root, c.name);
    if (c.train.length === 0 && c.test.length === 0) {
      throw new HgadError('INVALID_ARGUMENT', `Class ${c.name} has no images: ${where}`, 'root');
    }
    if (c.train.length === 0) {
      const trainDir = layout === 'visa' ? where : layout === 'btad' ? path.join(where, 'train', 'ok')
        : layout === 'mvtec3d' ? path.join(where, 'train', 'good', 'rgb') : path.join(where, 'train', 'good');
      throw new HgadError('INVALID_ARGUMENT', `Class ${c.name} has no training images in ${trainDir}`, 'root');
    }
  }
}

/** A Dataset over classes already read; the samples are frozen and copied out on each call. */
export function makeDataset(root: string, roots: string[], layout: Dataset['layout'], data: ClassData[]): Dataset {
  const byClass = new Map<string, { train: readonly Sample[]; test: readonly Sample[] }>();
  for (const c of data) {
    byClass.set(c.name, { train: c.train.map((s) => Object.freeze({ ...s })), test: c.test.map((s) => Object.freeze({ ...s })) });
  }
  const classes = data.map((c) => c.name);
  return {
    root,
    roots: roots.slice(),
    layout,
    get classes() {
      return classes.slice();
    },
    samples(split: Split, className?: string): Sample[] {
      if (split !== 'train' && split !== 'test') throw new HgadArgumentError('split', "'train' or 'test'", split);
      if (className !== undefined) {
        const c = byClass.get(className);
        if (c === undefined) throw new HgadArgumentError('className', `one of: ${classes.join(', ')}`, className);
        return c[split].slice();
      }
      return classes.flatMap((name) => (byClass.get(name) as { train: readonly Sample[]; test: readonly Sample[] })[split]);
    },
  };
}

/** Reads a dataset folder. Sample order: classes sorted, then defect folders sorted, then file names sorted. */
export async function openDataset(options: OpenDatasetOptions): Promise<Dataset> {
  if (typeof options !== 'object' || options === null) throw new HgadArgumentError('options', 'an object { root, layout?, classes? }', options);
  checkKeys('options', options, ['root', 'layout', 'classes']);
  const { root: rootArg, layout = 'auto', classes } = options;
  if (typeof rootArg !== 'string' || rootArg === '') throw new HgadArgumentError('root', 'a folder path', rootArg);
  if (!LAYOUTS.includes(layout)) throw new HgadArgumentError('layout', `one of: ${LAYOUTS.join(', ')}`, layout);
  if (classes !== undefined) {
    if (!Array.isArray(classes) || classes.length === 0) throw new HgadArgumentError('classes', 'a non-empty array of class names', classes);
    classes.forEach((c, i) => {
      if (typeof c !== 'string') throw new HgadArgumentError(`classes[${i}]`, 'a class name', c);
    });
  }
  const root = path.resolve(rootArg);
  if (!(await isDirectory(root))) throw new HgadError('IO', `The dataset root ${root} does not exist or is not a folder`, 'root');

  const select = classSelector(classes);
  let resolved: DatasetLayout;
  let data: ClassData[];
  if (layout !== 'auto') {
    resolved = layout;
    data = await READERS[layout](root, select);
  } else {
    const detected = await detectLayout(root);
    if (detected === 'tree') {
      data = await readGeneric(root, select);
      resolved = (await looksLikeMvtec(root, data)) ? 'mvtec' : 'generic';
    } else {
      resolved = detected;
      data = await READERS[detected](root, select);
    }
  }
  checkClasses(root, resolved, data);
  return makeDataset(root, [root], resolved, data);
}
