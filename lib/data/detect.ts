// Layout auto-detection. The rules, in order:
//  1. <root>/split_csv/1cls.csv is a file                          -> 'visa'
//  2. some class folder (a sub-folder of root holding train/) has train/good/rgb/ -> 'mvtec3d'
//  3. some class folder has train/ok/                               -> 'btad'
//  4. otherwise the tree is read as 'generic' (a superset of MVTec AD), and reported as 'mvtec' when every
//     class has a ground_truth/ folder and every defect image has its <name>_mask.png there (see
//     openDataset); a tree with any missing mask stays 'generic' rather than failing.
import * as path from 'path';
import { HgadError } from '../errors';
import { isDirectory, isFile } from './files';
import { treeClasses } from './tree';
import { VISA_SPLIT_FILE } from './visa';
import { ClassData } from './types';

export type DetectedTree = 'visa' | 'mvtec3d' | 'btad' | 'tree';

export async function detectLayout(root: string): Promise<DetectedTree> {
  if (await isFile(path.join(root, VISA_SPLIT_FILE))) return 'visa';
  const classes = await treeClasses(root);
  if (classes.length === 0) {
    throw new HgadError('INVALID_ARGUMENT', `Cannot detect the layout of ${root}: it has neither ${VISA_SPLIT_FILE} ` +
      'nor class folders with a train/ sub-folder', 'root');
  }
  for (const c of classes) if (await isDirectory(path.join(root, c, 'train', 'good', 'rgb'))) return 'mvtec3d';
  for (const c of classes) if (await isDirectory(path.join(root, c, 'train', 'ok'))) return 'btad';
  return 'tree';
}

/** Whether classes read with the generic rules also satisfy MVTec AD's: every defect image has <name>_mask.png. */
export async function looksLikeMvtec(root: string, classes: ClassData[]): Promise<boolean> {
  for (const c of classes) {
    if (!(await isDirectory(path.join(root, c.name, 'ground_truth')))) return false;
    for (const s of c.test) {
      if (s.label === 0) continue;
      if (s.maskPath === null) return false;
      const expected = `${path.basename(s.path, path.extname(s.path))}_mask.png`;
      if (path.basename(s.maskPath) !== expected) return false;
    }
  }
  return true;
}
