// BTAD (beanTech): <class>/train/ok, <class>/test/ok and test/ko, masks <class>/ground_truth/ko/<name>.<ext>.
// Its classes mix .png and .bmp images and a mask may carry another extension than its image, so masks
// are matched by stem over every image extension. Normal images get defect 'good'; defect ones 'ko'.
import { IMAGE_EXTENSIONS } from './files';
import { readTreeClass, TreeRules, treeClasses } from './tree';
import { ClassData } from './types';

export const BTAD_RULES: TreeRules = {
  layout: 'btad',
  normal: 'ok',
  maskNames: (stem) => IMAGE_EXTENSIONS.map((ext) => `${stem}${ext}`),
  masksRequired: true,
};

export async function readBtad(root: string, select: (all: string[]) => string[]): Promise<ClassData[]> {
  const classes = select(await treeClasses(root));
  return Promise.all(classes.map((c) => readTreeClass(root, c, BTAD_RULES)));
}
