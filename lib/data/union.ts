// Several datasets in one unified model: their classes side by side, names kept unique.
import * as path from 'path';
import { HgadArgumentError } from '../errors';
import { checkKeys } from '../validate';
import { makeDataset } from './dataset';
import { ClassData, Dataset } from './types';

export interface UnionOptions {
  /** Name every class `<datasetName>/<class>`, datasetName being the base name of its dataset's root. */
  prefix?: boolean;
}

/** The union of `datasets`, in their order. A class name present twice is an error unless prefix is set. */
export function unionDatasets(datasets: Dataset[], options: UnionOptions = {}): Dataset {
  if (!Array.isArray(datasets) || datasets.length === 0) throw new HgadArgumentError('datasets', 'a non-empty array of datasets', datasets);
  datasets.forEach((d, i) => {
    if (typeof d !== 'object' || d === null || typeof d.samples !== 'function' || !Array.isArray(d.classes)) {
      throw new HgadArgumentError(`datasets[${i}]`, 'a Dataset (from openDataset or unionDatasets)', d);
    }
  });
  if (typeof options !== 'object' || options === null) throw new HgadArgumentError('options', 'an object { prefix? }', options);
  checkKeys('options', options, ['prefix']);
  const prefix = options.prefix ?? false;
  if (typeof prefix !== 'boolean') throw new HgadArgumentError('options.prefix', 'a boolean', prefix);

  const owner = new Map<string, string>();
  const data: ClassData[] = [];
  for (const d of datasets) {
    for (const c of d.classes) {
      const name = prefix ? `${path.basename(d.root)}/${c}` : c;
      const first = owner.get(name);
      if (first !== undefined) {
        throw new HgadArgumentError('datasets', `class names unique across datasets (class "${name}" is in both ${first} ` +
          `and ${d.root}; pass { prefix: true } to name classes <datasetName>/<class>)`, name);
      }
      owner.set(name, d.root);
      const rename = <T extends { className: string }>(s: T): T => ({ ...s, className: name });
      data.push({ name, train: d.samples('train', c).map(rename), test: d.samples('test', c).map(rename) });
    }
  }
  const roots = datasets.flatMap((d) => d.roots ?? [d.root]);
  return makeDataset(roots.join(path.delimiter), roots, 'union', data);
}
