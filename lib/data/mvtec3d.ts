// MVTec 3D-AD, RGB images only: <class>/train/good/rgb/*.png, <class>/test/<defect>/rgb/*.png, masks
// <class>/test/<defect>/gt/<same name>. The xyz/ point clouds are ignored, and so is the
// `validation` split: HGAD reports its results on train (fitting) and test (evaluation) only.
import * as path from 'path';
import { HgadError } from '../errors';
import { findIn, indexImages, isDirectory, listDirs, listImages, stemOf } from './files';
import { treeClasses } from './tree';
import { ClassData, Sample } from './types';

async function readClass(root: string, className: string): Promise<ClassData> {
  const classDir = path.join(root, className);
  const trainDir = path.join(classDir, 'train', 'good', 'rgb');
  const train: Sample[] = (await isDirectory(trainDir) ? await listImages(trainDir) : []).map((p) => ({
    path: p, className, split: 'train', defect: 'good', label: 0, maskPath: null,
  }));
  const test: Sample[] = [];
  const testDir = path.join(classDir, 'test');
  for (const folder of (await isDirectory(testDir)) ? await listDirs(testDir) : []) {
    const rgbDir = path.join(testDir, folder, 'rgb');
    if (!(await isDirectory(rgbDir))) continue;
    const images = await listImages(rgbDir);
    if (folder === 'good') {
      // Normal test images carry all-zero gt masks; null says the same without reading them.
      for (const p of images) test.push({ path: p, className, split: 'test', defect: 'good', label: 0, maskPath: null });
      continue;
    }
    const gtDir = path.join(testDir, folder, 'gt');
    const masks = await indexImages(gtDir);
    for (const p of images) {
      const maskPath = findIn(masks, [`${stemOf(p)}.png`]);
      if (maskPath === null) {
        throw new HgadError('IO', `The mvtec3d layout needs a mask for every defect image, but ${p} has none: ` +
          `expected ${path.join(gtDir, `${stemOf(p)}.png`)}`, 'root');
      }
      test.push({ path: p, className, split: 'test', defect: folder, label: 1, maskPath });
    }
  }
  return { name: className, train, test };
}

export async function readMvtec3d(root: string, select: (all: string[]) => string[]): Promise<ClassData[]> {
  const classes = select(await treeClasses(root));
  return Promise.all(classes.map((c) => readClass(root, c)));
}
