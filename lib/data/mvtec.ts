// MVTec AD: <class>/train/good, <class>/test/<defect>, <class>/ground_truth/<defect>/<name>_mask.png.
// Every defect image must have its mask (the benchmark's pixel metrics rely on it).
import { readTreeClass, TreeRules, treeClasses } from './tree';
import { ClassData } from './types';

export const MVTEC_RULES: TreeRules = {
  layout: 'mvtec',
  normal: 'good',
  maskNames: (stem) => [`${stem}_mask.png`],
  masksRequired: true,
};

export async function readMvtec(root: string, select: (all: string[]) => string[]): Promise<ClassData[]> {
  const classes = select(await treeClasses(root));
  return Promise.all(classes.map((c) => readTreeClass(root, c, MVTEC_RULES)));
}
