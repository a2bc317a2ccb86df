// Dataset readers: every layout on generated trees, auto-detection, class filters, unions, hold-out
// splits and the typed errors for unusable folders.
import { promises as fs } from 'fs';
import * as path from 'path';
import { openDataset, splitHoldout, unionDatasets, Sample } from '../lib/data';
import { HgadArgumentError } from '../lib/errors';
import {
  errorOf, makeMvtecClass, pad, removeDir, tempDir, writeBmp24, writeImage, writeMask,
} from './data-fixtures';

let dir: string;
beforeAll(async () => {
  dir = await tempDir('datasets');
});
afterAll(async () => {
  await removeDir(dir);
});

const names = (samples: Sample[]): string[] => samples.map((s) => path.relative(dir, s.path));

describe('MVTec AD layout', () => {
  let root: string;
  beforeAll(async () => {
    root = path.join(dir, 'mvtec');
    await makeMvtecClass(root, 'bottle', { train: 3, good: 2, defects: { crack: 2, broken: 1 } });
    await makeMvtecClass(root, 'cable', { train: 2, good: 1, defects: { cut: 1 } }, '.JPG');
    await fs.writeFile(path.join(root, 'license.txt'), 'not a class');
    await fs.writeFile(path.join(root, 'bottle', 'train', 'good', 'notes.txt'), 'not an image');
  });

  test('reads classes, splits, defects, labels and masks in sorted order', async () => {
    const ds = await openDataset({ root, layout: 'mvtec' });
    expect(ds.layout).toBe('mvtec');
    expect(ds.root).toBe(path.resolve(root));
    expect(ds.classes).toEqual(['bottle', 'cable']);
    expect(names(ds.samples('train', 'bottle'))).toEqual(['000', '001', '002'].map((n) => `mvtec/bottle/train/good/${n}.png`));
    const test = ds.samples('test', 'bottle');
    expect(test.map((s) => [s.defect, s.label, s.maskPath && path.relative(dir, s.maskPath)])).toEqual([
      ['broken', 1, 'mvtec/bottle/ground_truth/broken/000_mask.png'],
      ['crack', 1, 'mvtec/bottle/ground_truth/crack/000_mask.png'],
      ['crack', 1, 'mvtec/bottle/ground_truth/crack/001_mask.png'],
      ['good', 0, null],
      ['good', 0, null],
    ]);
    expect(test.every((s) => s.split === 'test' && s.className === 'bottle')).toBe(true);
    // Uppercase extensions are images too.
    expect(names(ds.samples('train', 'cable'))).toEqual(['mvtec/cable/train/good/000.JPG', 'mvtec/cable/train/good/001.JPG']);
    // All classes: in class order.
    expect(ds.samples('train').map((s) => s.className)).toEqual(['bottle', 'bottle', 'bottle', 'cable', 'cable']);
    expect(ds.samples('test')).toHaveLength(7);
  });

  test('auto-detects MVTec AD', async () => {
    expect((await openDataset({ root })).layout).toBe('mvtec');
  });

  test('samples() returns fresh arrays of frozen samples', async () => {
    const ds = await openDataset({ root });
    const a = ds.samples('train');
    a.pop();
    expect(ds.samples('train')).toHaveLength(5);
    expect(Object.isFrozen(ds.samples('train')[0])).toBe(true);
    const e = await errorOf(() => ds.samples('train', 'carpet'));
    expect(e.parameter).toBe('className');
    expect(e.message).toContain('one of: bottle, cable');
    expect((await errorOf(() => ds.samples('val' as 'train'))).parameter).toBe('split');
  });

  test('class filter', async () => {
    const ds = await openDataset({ root, classes: ['cable'] });
    expect(ds.classes).toEqual(['cable']);
    expect(ds.samples('train')).toHaveLength(2);
    const e = await errorOf(() => openDataset({ root, classes: ['cable', 'carpet'] }));
    expect(e).toBeInstanceOf(HgadArgumentError);
    expect(e.parameter).toBe('classes[1]');
    expect(e.message).toContain('one of: bottle, cable');
    expect(e.message).toContain('"carpet"');
  });

  test('a defect image without its mask is an error for mvtec, maskPath null for generic', async () => {
    const r = path.join(dir, 'mvtec-missing');
    await makeMvtecClass(r, 'tile', { train: 1, good: 1, defects: { crack: 2 } });
    await fs.rm(path.join(r, 'tile', 'ground_truth', 'crack', '001_mask.png'));
    const e = await errorOf(() => openDataset({ root: r, layout: 'mvtec' }));
    expect(e.code).toBe('IO');
    expect(e.message).toContain(path.join(r, 'tile', 'test', 'crack', '001.png'));
    expect(e.message).toContain(path.join(r, 'tile', 'ground_truth', 'crack', '001_mask.png'));
    // Auto-detection falls back to generic instead of failing.
    const ds = await openDataset({ root: r });
    expect(ds.layout).toBe('generic');
    expect(ds.samples('test').map((s) => s.maskPath && path.basename(s.maskPath))).toEqual(['000_mask.png', null, null]);
  });
});

describe('generic layout', () => {
  test('without ground_truth: defect images get maskPath null', async () => {
    const root = path.join(dir, 'generic-nogt');
    await writeImage(path.join(root, 'widget', 'train', 'good', 'a.webp'), 9, 7);
    await writeImage(path.join(root, 'widget', 'train', 'good', 'B.TIFF'), 9, 7);
    await writeImage(path.join(root, 'widget', 'test', 'dent', 'x.jpeg'), 9, 7);
    await writeImage(path.join(root, 'widget', 'test', 'good', 'y.bmp'), 9, 7);
    const ds = await openDataset({ root });
    expect(ds.layout).toBe('generic');
    // Code-unit order: uppercase before lowercase.
    expect(names(ds.samples('train'))).toEqual(['generic-nogt/widget/train/good/B.TIFF', 'generic-nogt/widget/train/good/a.webp']);
    expect(ds.samples('test').map((s) => [path.basename(s.path), s.defect, s.label, s.maskPath])).toEqual([
      ['x.jpeg', 'dent', 1, null], ['y.bmp', 'good', 0, null],
    ]);
  });

  test('with ground_truth named <name>.png or <name>_mask.png; no test folder is allowed', async () => {
    const root = path.join(dir, 'generic-gt');
    await writeImage(path.join(root, 'gizmo', 'train', 'good', '0.png'), 8, 8);
    await writeImage(path.join(root, 'gizmo', 'test', 'scratch', '1.jpg'), 8, 8);
    await writeImage(path.join(root, 'gizmo', 'test', 'scratch', '2.jpg'), 8, 8);
    await writeImage(path.join(root, 'gizmo', 'test', 'scratch', '3.jpg'), 8, 8);
    await writeMask(path.join(root, 'gizmo', 'ground_truth', 'scratch', '1.png'), 8, 8, { x0: 0, y0: 0, x1: 2, y1: 2 });
    await writeMask(path.join(root, 'gizmo', 'ground_truth', 'scratch', '2_mask.PNG'), 8, 8, { x0: 0, y0: 0, x1: 2, y1: 2 });
    await writeImage(path.join(root, 'lonely', 'train', 'good', '0.png'), 8, 8);
    const ds = await openDataset({ root, layout: 'generic' });
    expect(ds.samples('test', 'gizmo').map((s) => s.maskPath && path.basename(s.maskPath))).toEqual(['1.png', '2_mask.PNG', null]);
    expect(ds.samples('test', 'lonely')).toEqual([]);
    expect((await openDataset({ root })).layout).toBe('generic');
  });
});

describe('VisA layout', () => {
  let root: string;
  beforeAll(async () => {
    root = path.join(dir, 'visa');
    const rows = ['object,split,label,image,mask'];
    for (const obj of ['candle', 'pcb1']) {
      for (let i = 0; i < 3; i++) {
        const img = `${obj}/Data/Images/Normal/${pad(i)}.JPG`;
        await writeImage(path.join(root, img), 12, 10);
        rows.push(`${obj},${i < 2 ? 'train' : 'test'},normal,${img},`);
      }
      const bad = `${obj}/Data/Images/Anomaly/000.JPG`;
      const mask = `${obj}/Data/Masks/Anomaly/000.png`;
      await writeImage(path.join(root, bad), 12, 10);
      await writeMask(path.join(root, mask), 12, 10, { x0: 1, y0: 1, x1: 3, y1: 3 });
      rows.push(`"${obj}",test,anomaly,${bad},${mask}`);
    }
    await fs.mkdir(path.join(root, 'split_csv'), { recursive: true });
    await fs.writeFile(path.join(root, 'split_csv', '1cls.csv'), `${rows.join('\r\n')}\r\n`);
  });

  test('reads the 1cls split file (auto-detected)', async () => {
    const ds = await openDataset({ root });
    expect(ds.layout).toBe('visa');
    expect(ds.classes).toEqual(['candle', 'pcb1']);
    expect(names(ds.samples('train', 'pcb1'))).toEqual(['visa/pcb1/Data/Images/Normal/000.JPG', 'visa/pcb1/Data/Images/Normal/001.JPG']);
    expect(ds.samples('test', 'candle').map((s) => [path.relative(root, s.path), s.defect, s.label,
      s.maskPath && path.relative(root, s.maskPath)])).toEqual([
      ['candle/Data/Images/Anomaly/000.JPG', 'anomaly', 1, 'candle/Data/Masks/Anomaly/000.png'],
      ['candle/Data/Images/Normal/002.JPG', 'good', 0, null],
    ]);
    expect((await openDataset({ root, classes: ['pcb1'] })).samples('test')).toHaveLength(2);
  });

  test('bad split files are typed errors naming the file and row', async () => {
    const bad = path.join(dir, 'visa-bad');
    await fs.mkdir(path.join(bad, 'split_csv'), { recursive: true });
    const csv = path.join(bad, 'split_csv', '1cls.csv');
    await fs.writeFile(csv, 'object,split,label,image,mask\ncandle,val,normal,a.png,\n');
    let e = await errorOf(() => openDataset({ root: bad, layout: 'visa' }));
    expect(e.message).toContain(`${csv} row 2: split must be train or test, not "val"`);
    await fs.writeFile(csv, 'object,split,label,image,mask\ncandle,train,normal,missing.png,\n');
    e = await errorOf(() => openDataset({ root: bad }));
    expect(e.code).toBe('IO');
    expect(e.message).toContain(path.join(bad, 'missing.png'));
    await fs.writeFile(csv, 'object,image\n');
    e = await errorOf(() => openDataset({ root: bad }));
    expect(e.message).toContain('expected the columns object,split,label,image,mask');
  });
});

describe('BTAD layout', () => {
  test('ok/ko folders, bmp images, masks with another extension (auto-detected)', async () => {
    const root = path.join(dir, 'btad');
    const rgb = new Uint8Array(5 * 4 * 3).fill(100);
    for (let i = 0; i < 2; i++) await writeBmp24(path.join(root, '03', 'train', 'ok', `${pad(i)}.bmp`), 5, 4, rgb);
    await writeBmp24(path.join(root, '03', 'test', 'ok', '000.bmp'), 5, 4, rgb);
    await writeBmp24(path.join(root, '03', 'test', 'ko', '000.bmp'), 5, 4, rgb);
    await writeBmp24(path.join(root, '03', 'test', 'ko', '001.bmp'), 5, 4, rgb);
    await writeMask(path.join(root, '03', 'ground_truth', 'ko', '000.png'), 5, 4, { x0: 0, y0: 0, x1: 1, y1: 1 });
    await writeMask(path.join(root, '03', 'ground_truth', 'ko', '001.png'), 5, 4, { x0: 0, y0: 0, x1: 1, y1: 1 });
    await writeImage(path.join(root, '01', 'train', 'ok', '0000.png'), 6, 6);
    await writeImage(path.join(root, '01', 'test', 'ko', '0000.png'), 6, 6);
    await writeMask(path.join(root, '01', 'ground_truth', 'ko', '0000.png'), 6, 6, { x0: 0, y0: 0, x1: 1, y1: 1 });
    const ds = await openDataset({ root });
    expect(ds.layout).toBe('btad');
    expect(ds.classes).toEqual(['01', '03']);
    expect(ds.samples('train', '03')).toHaveLength(2);
    expect(ds.samples('test', '03').map((s) => [path.basename(s.path), s.defect, s.label, s.maskPath && path.basename(s.maskPath)]))
      .toEqual([['000.bmp', 'ko', 1, '000.png'], ['001.bmp', 'ko', 1, '001.png'], ['000.bmp', 'good', 0, null]]);
    await fs.rm(path.join(root, '03', 'ground_truth', 'ko', '001.png'));
    const e = await errorOf(() => openDataset({ root, layout: 'btad' }));
    expect(e.message).toContain(path.join(root, '03', 'test', 'ko', '001.bmp'));
  });
});

describe('MVTec 3D-AD layout', () => {
  test('rgb images and gt masks; xyz and validation ignored (auto-detected)', async () => {
    const root = path.join(dir, 'mvtec3d');
    const c = path.join(root, 'bagel');
    for (let i = 0; i < 2; i++) {
      await writeImage(path.join(c, 'train', 'good', 'rgb', `${pad(i)}.png`), 10, 10);
      await writeImage(path.join(c, 'train', 'good', 'xyz', `${pad(i)}.tiff`), 10, 10);
    }
    await writeImage(path.join(c, 'validation', 'good', 'rgb', '000.png'), 10, 10);
    await writeImage(path.join(c, 'test', 'good', 'rgb', '000.png'), 10, 10);
    await writeMask(path.join(c, 'test', 'good', 'gt', '000.png'), 10, 10, { x0: 0, y0: 0, x1: 0, y1: 0 });
    await writeImage(path.join(c, 'test', 'crack', 'rgb', '000.png'), 10, 10);
    await writeImage(path.join(c, 'test', 'crack', 'xyz', '000.tiff'), 10, 10);
    await writeMask(path.join(c, 'test', 'crack', 'gt', '000.png'), 10, 10, { x0: 2, y0: 2, x1: 4, y1: 4 });
    const ds = await openDataset({ root });
    expect(ds.layout).toBe('mvtec3d');
    expect(names(ds.samples('train'))).toEqual(['mvtec3d/bagel/train/good/rgb/000.png', 'mvtec3d/bagel/train/good/rgb/001.png']);
    expect(ds.samples('test').map((s) => [path.relative(c, s.path), s.defect, s.label, s.maskPath && path.relative(c, s.maskPath)]))
      .toEqual([['test/crack/rgb/000.png', 'crack', 1, 'test/crack/gt/000.png'], ['test/good/rgb/000.png', 'good', 0, null]]);
  });
});

describe('unusable folders are typed errors naming the path', () => {
  test('missing root', async () => {
    const missing = path.join(dir, 'nope');
    const e = await errorOf(() => openDataset({ root: missing }));
    expect([e.code, e.parameter]).toEqual(['IO', 'root']);
    expect(e.message).toContain(missing);
  });

  test('a folder without class folders', async () => {
    const r = path.join(dir, 'flat');
    await writeImage(path.join(r, 'a.png'), 4, 4);
    const e = await errorOf(() => openDataset({ root: r }));
    expect(e.message).toContain(r);
    expect(e.message).toContain('train/');
  });

  test('an empty class and a class without training images', async () => {
    const r = path.join(dir, 'empty');
    await fs.mkdir(path.join(r, 'void', 'train', 'good'), { recursive: true });
    let e = await errorOf(() => openDataset({ root: r, layout: 'mvtec' }));
    expect(e.message).toContain(`Class void has no images: ${path.join(r, 'void')}`);
    await writeImage(path.join(r, 'void', 'test', 'good', '0.png'), 4, 4);
    e = await errorOf(() => openDataset({ root: r, layout: 'generic' }));
    expect(e.message).toContain(`Class void has no training images in ${path.join(r, 'void', 'train', 'good')}`);
  });

  test('bad arguments', async () => {
    expect((await errorOf(() => openDataset({ root: '' }))).parameter).toBe('root');
    expect((await errorOf(() => openDataset({ root: dir, layout: 'coco' as 'mvtec' }))).parameter).toBe('layout');
    expect((await errorOf(() => openDataset({ root: dir, classes: [] }))).parameter).toBe('classes');
  });
});

describe('union', () => {
  let a: string;
  let b: string;
  beforeAll(async () => {
    a = path.join(dir, 'union', 'setA');
    b = path.join(dir, 'union', 'setB');
    await makeMvtecClass(a, 'bottle', { train: 2, good: 1, defects: { crack: 1 } });
    await makeMvtecClass(a, 'screw', { train: 1, good: 1, defects: {} });
    await makeMvtecClass(b, 'bottle', { train: 3, good: 0, defects: { dent: 1 } });
  });

  test('a class name in two datasets is an error naming both roots', async () => {
    const e = await errorOf(async () => unionDatasets([await openDataset({ root: a }), await openDataset({ root: b })]));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toContain(path.resolve(a));
    expect(e.message).toContain(path.resolve(b));
    expect(e.message).toContain('"bottle"');
  });

  test('prefix: <datasetName>/<class>', async () => {
    const u = unionDatasets([await openDataset({ root: a }), await openDataset({ root: b })], { prefix: true });
    expect(u.layout).toBe('union');
    expect(u.roots).toEqual([path.resolve(a), path.resolve(b)]);
    expect(u.classes).toEqual(['setA/bottle', 'setA/screw', 'setB/bottle']);
    expect(u.samples('train').map((s) => s.className)).toEqual(['setA/bottle', 'setA/bottle', 'setA/screw', 'setB/bottle', 'setB/bottle', 'setB/bottle']);
    expect(u.samples('test', 'setB/bottle').map((s) => [path.relative(dir, s.path), s.defect]))
      .toEqual([['union/setB/bottle/test/dent/000.png', 'dent']]);
  });

  test('without a clash the names are kept', async () => {
    const u = unionDatasets([await openDataset({ root: a, classes: ['screw'] }), await openDataset({ root: b })]);
    expect(u.classes).toEqual(['screw', 'bottle']);
    expect(u.samples('train', 'bottle')).toHaveLength(3);
  });
});

describe('splitHoldout', () => {
  const make = (className: string, n: number): Sample[] => Array.from({ length: n }, (_, i) => ({
    path: `/x/${className}/${i}.png`, className, split: 'train', defect: 'good', label: 0, maskPath: null,
  }));
  const samples = [...make('a', 10), ...make('b', 3), ...make('c', 1), ...make('d', 2)];

  test('deterministic, stratified per class, keeps input order', () => {
    const one = splitHoldout(samples, 0.2, 7);
    const two = splitHoldout(samples, 0.2, 7);
    expect(one).toEqual(two);
    const count = (list: Sample[], c: string): number => list.filter((s) => s.className === c).length;
    // round(0.2 * 10) = 2; round(0.6) = 1; a single image stays in train; at least 1 of 2.
    expect(['a', 'b', 'c', 'd'].map((c) => count(one.holdout, c))).toEqual([2, 1, 0, 1]);
    expect(one.train.length + one.holdout.length).toBe(samples.length);
    expect(new Set([...one.train, ...one.holdout])).toEqual(new Set(samples));
    const index = (s: Sample): number => samples.indexOf(s);
    expect(one.train.map(index)).toEqual([...one.train.map(index)].sort((x, y) => x - y));
    expect(one.holdout.map(index)).toEqual([...one.holdout.map(index)].sort((x, y) => x - y));
  });

  test('another seed picks other samples; a class split does not depend on the other classes', () => {
    const picks = new Set<string>();
    for (let seed = 0; seed < 20; seed++) picks.add(splitHoldout(samples, 0.2, seed).holdout.filter((s) => s.className === 'a').map((s) => s.path).join());
    expect(picks.size).toBeGreaterThan(5);
    const alone = splitHoldout(make('a', 10), 0.2, 7).holdout.map((s) => s.path);
    expect(splitHoldout(samples, 0.2, 7).holdout.filter((s) => s.className === 'a').map((s) => s.path)).toEqual(alone);
  });

  test('fraction 0 holds nothing; bad arguments are typed', async () => {
    expect(splitHoldout(samples, 0, 1).holdout).toEqual([]);
    expect((await errorOf(() => splitHoldout(samples, 1, 1))).parameter).toBe('fraction');
    expect((await errorOf(() => splitHoldout(samples, 0.1, 1.5))).parameter).toBe('seed');
  });
});
