// The generic layout: <root>/<class>/train/good, <root>/<class>/test/<defect or good>, and optional
// masks <root>/<class>/ground_truth/<defect>/<name>_mask.<ext> or <name>.<ext> (any image extension,
// `_mask` preferred). A defect image without a mask gets maskPath null: it counts for image-level
// metrics only. A class without a test/ folder is allowed (a training-only dataset).
import { IMAGE_EXTENSIONS } from './files';
import { readTreeClass, TreeRules, treeClasses } from './tree';
import { ClassData } from './types';

export const GENERIC_RULES: TreeRules = {
  layout: 'generic',
  normal: 'good',
  maskNames: (stem) => [
    ...IMAGE_EXTENSIONS.map((ext) => `${stem}_mask${ext}`),
    ...IMAGE_EXTENSIONS.map((ext) => `${stem}${ext}`),
  ],
  masksRequired: false,
};

export async function readGeneric(root: string, select: (all: string[]) => string[]): Promise<ClassData[]> {
  const classes = select(await treeClasses(root));
  return Promise.all(classes.map((c) => readTreeClass(root, c, GENERIC_RULES)));
}
