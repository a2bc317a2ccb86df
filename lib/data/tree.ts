// The folder tree shared by MVTec AD, BTAD and the generic layout:
//   <root>/<class>/train/<normal>/*, <root>/<class>/test/<normal or defect>/*,
//   <root>/<class>/ground_truth/<defect>/<mask>
// The layouts differ only in the name of the normal folder and in how a mask is named and whether it
// must exist; those come in as TreeRules.
import * as path from 'path';
import { HgadError } from '../errors';
import { findIn, indexImages, isDirectory, listDirs, listImages } from './files';
import { ClassData, Sample } from './types';

export interface TreeRules {
  /** Layout name used in messages. */
  layout: string;
  /** Folder of normal images under train/ and test/ ('good', or 'ok' for BTAD). */
  normal: string;
  /** Candidate mask file names for an image stem, with lower-case extensions, in order of preference. */
  maskNames(stem: string): string[];
  /** A defect image without a mask is an error (benchmark layouts) or gets maskPath null (generic). */
  masksRequired: boolean;
}

/** Class folders of a tree dataset: the sub-folders of root that hold a train/ folder. */
export async function treeClasses(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const name of await listDirs(root)) {
    if (await isDirectory(path.join(root, name, 'train'))) out.push(name);
  }
  return out;
}

export async function readTreeClass(root: string, className: string, rules: TreeRules): Promise<ClassData> {
  const classDir = path.join(root, className);
  const trainDir = path.join(classDir, 'train', rules.normal);
  const train: Sample[] = (await isDirectory(trainDir) ? await listImages(trainDir) : []).map((p) => ({
    path: p, className, split: 'train', defect: 'good', label: 0, maskPath: null,
  }));

  const test: Sample[] = [];
  const testDir = path.join(classDir, 'test');
  const defects = (await isDirectory(testDir)) ? await listDirs(testDir) : [];
  for (const folder of defects) {
    const images = await listImages(path.join(testDir, folder));
    if (folder === rules.normal) {
      for (const p of images) test.push({ path: p, className, split: 'test', defect: 'good', label: 0, maskPath: null });
      continue;
    }
    const maskDir = path.join(classDir, 'ground_truth', folder);
    const masks = await indexImages(maskDir);
    for (const p of images) {
      const stem = path.basename(p, path.extname(p));
      const names = rules.maskNames(stem);
      const maskPath = findIn(masks, names);
      if (maskPath === null && rules.masksRequired) {
        throw new HgadError('IO', `The ${rules.layout} layout needs a mask for every defect image, but ${p} has ` +
          `none: expected ${path.join(maskDir, names[0] ?? stem)}. Open the dataset with layout 'generic' to ` +
          'accept defect images without masks.', 'root');
      }
      test.push({ path: p, className, split: 'test', defect: folder, label: 1, maskPath });
    }
  }
  return { name: className, train, test };
}
