// Checks and defaults for generateDemoDataset's options; every failure names the option.
import { HgadArgumentError } from '../errors';
import { checkInteger, checkKeys } from '../validate';
import { DEMO_CLASSES } from './classes';

export interface DemoDatasetOptions {
  /** Folder to create; it must not exist, be empty, or hold a demo dataset made with the same options. */
  root: string;
  /** Seed of all randomness (default 0): the same options give byte-identical files. */
  seed?: number;
  /** Classes to generate (default: all of DEMO_CLASSES). */
  classes?: string[];
  /** Image width and height in pixels (default 256). */
  size?: number;
  /** Defect-free training images per class (default 60). */
  trainPerClass?: number;
  /** Defect-free test images per class (default 15). */
  testGoodPerClass?: number;
  /** Defective test images per class, spread evenly over the class's defect types (default 20). */
  testDefectPerClass?: number;
  /** Images rendered and written at once (default: twice the cores, 2 to 8: writes overlap rendering). */
  concurrency?: number;
}

export type ResolvedDemoOptions = Required<DemoDatasetOptions>;

export const DEMO_DEFAULTS = Object.freeze({
  seed: 0, size: 256, trainPerClass: 60, testGoodPerClass: 15, testDefectPerClass: 20,
});

const MAX_PER_SPLIT = 100000;

export function resolveDemoOptions(options: unknown, cores: number): ResolvedDemoOptions {
  if (typeof options !== 'object' || options === null) throw new HgadArgumentError('options', 'an object { root, ... }', options);
  checkKeys('options', options, ['root', 'seed', 'classes', 'size', 'trainPerClass', 'testGoodPerClass', 'testDefectPerClass', 'concurrency']);
  const o = options as Record<string, unknown>;
  if (typeof o.root !== 'string' || o.root.trim() === '') throw new HgadArgumentError('root', 'a non-empty path string', o.root);
  const pick = (name: string, fallback: number, lo: number, hi: number): number => {
    const v = o[name] === undefined ? fallback : o[name];
    checkInteger(name, v, lo, hi);
    return v as number;
  };
  let classes: string[] = [...DEMO_CLASSES];
  if (o.classes !== undefined) {
    const list = o.classes;
    if (!Array.isArray(list) || list.length === 0) {
      throw new HgadArgumentError('classes', `a non-empty array of class names from ${DEMO_CLASSES.join(', ')}`, list);
    }
    list.forEach((c: unknown, i: number) => {
      if (typeof c !== 'string' || !DEMO_CLASSES.includes(c)) {
        throw new HgadArgumentError(`classes[${i}]`, `one of ${DEMO_CLASSES.join(', ')}`, c);
      }
      if (list.indexOf(c) !== i) throw new HgadArgumentError(`classes[${i}]`, 'a class not listed before', c);
    });
    classes = [...(list as string[])];
  }
  return {
    root: o.root,
    seed: pick('seed', DEMO_DEFAULTS.seed, 0, 0xffffffff),
    classes,
    size: pick('size', DEMO_DEFAULTS.size, 64, 2048),
    trainPerClass: pick('trainPerClass', DEMO_DEFAULTS.trainPerClass, 1, MAX_PER_SPLIT),
    testGoodPerClass: pick('testGoodPerClass', DEMO_DEFAULTS.testGoodPerClass, 0, MAX_PER_SPLIT),
    testDefectPerClass: pick('testDefectPerClass', DEMO_DEFAULTS.testDefectPerClass, 0, MAX_PER_SPLIT),
    concurrency: pick('concurrency', Math.max(2, Math.min(8, 2 * cores)), 1, 64),
  };
}
