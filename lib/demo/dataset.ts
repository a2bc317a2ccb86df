// Writes the synthetic demo dataset in the MVTec AD layout.
//
// Atomicity: the whole dataset is built in a hidden temporary folder next to `root` and renamed to
// `root` only when every file is written and synced, so an interrupted run leaves at most a
// `.<name>.tmp-*` folder (removed on failure when possible) and never a `root` that looks complete.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HgadError } from '../errors';
import { DEMO_CLASS_SPECS } from './classes';
import { resolveDemoOptions, type DemoDatasetOptions, type ResolvedDemoOptions } from './options';
import { renderDemoSample, type DemoSplit } from './render';

export interface DemoClassCounts {
  train: number;
  testGood: number;
  /** Defective test images per defect type. */
  testDefect: Record<string, number>;
}

export interface DemoDatasetInfo {
  root: string;
  classes: string[];
  /** Defect types of each class (the folder names under test/ besides good). */
  defects: Record<string, string[]>;
  /** Number of images written (train and test; masks not counted). */
  images: number;
  /** Number of ground-truth masks (one per defective test image). */
  masks: number;
  size: number;
  seed: number;
  counts: Record<string, DemoClassCounts>;
  /** True when root already held this very dataset and nothing was written. */
  reused: boolean;
}

/** Written last into the dataset; marks a complete demo dataset and the options that made it. */
export const DEMO_MANIFEST = '.hgad-demo.json';
const MANIFEST_VERSION = 1;

interface Task {
  className: string;
  split: DemoSplit;
  label: string;
  index: number;
  image: string; // relative to the dataset root
  mask: string | null;
}

function fileName(index: number, count: number): string {
  return String(index).padStart(Math.max(3, String(count - 1).length), '0');
}

/** testDefectPerClass spread over the defect types, the first types taking the remainder. */
function splitCount(total: number, parts: number, k: number): number {
  return Math.floor(total / parts) + (k < total % parts ? 1 : 0);
}

function plan(o: ResolvedDemoOptions): { tasks: Task[]; counts: Record<string, DemoClassCounts>; defects: Record<string, string[]> } {
  const tasks: Task[] = [];
  const counts: Record<string, DemoClassCounts> = {};
  const defects: Record<string, string[]> = {};
  for (const className of o.classes) {
    const spec = DEMO_CLASS_SPECS.get(className);
    if (spec === undefined) throw new HgadError('INVALID_ARGUMENT', `Unknown demo class ${className}`, 'classes');
    const add = (split: DemoSplit, label: string, count: number): void => {
      for (let i = 0; i < count; i++) {
        const name = fileName(i, count);
        tasks.push({
          className, split, label, index: i,
          image: path.join(className, split, label, `${name}.png`),
          mask: label === 'good' ? null : path.join(className, 'ground_truth', label, `${name}_mask.png`),
        });
      }
    };
    add('train', 'good', o.trainPerClass);
    add('test', 'good', o.testGoodPerClass);
    const perDefect: Record<string, number> = {};
    spec.defects.forEach((d, k) => {
      perDefect[d] = splitCount(o.testDefectPerClass, spec.defects.length, k);
      add('test', d, perDefect[d]);
    });
    counts[className] = { train: o.trainPerClass, testGood: o.testGoodPerClass, testDefect: perDefect };
    defects[className] = [...spec.defects];
  }
  return { tasks, counts, defects };
}

/** What the manifest records: everything that changes the files (not root or concurrency). */
function identity(o: ResolvedDemoOptions): Record<string, unknown> {
  return {
    version: MANIFEST_VERSION, seed: o.seed, size: o.size, classes: o.classes,
    trainPerClass: o.trainPerClass, testGoodPerClass: o.testGoodPerClass, testDefectPerClass: o.testDefectPerClass,
  };
}

async function writeDurable(file: string, data: Buffer | string): Promise<void> {
  const fh = await fs.open(file, 'wx');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function syncDir(dir: string): Promise<void> {
  // Makes the rename durable on POSIX; directories cannot be opened for syncing on every platform.
  try {
    const fh = await fs.open(dir, 'r');
    try { await fh.sync(); } finally { await fh.close(); }
  } catch { /* best effort */ }
}

/**
 * Runs work over items, `width` at a time. On a failure the other workers stop taking items, and the
 * call settles only when all of them have finished, so nothing writes into the folder after cleanup.
 */
async function runPool<T>(items: readonly T[], width: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | null = null;
  const worker = async (): Promise<void> => {
    while (failure === null && next < items.length) {
      const item = items[next++] as T;
      try {
        await work(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
  if (failure !== null) throw (failure as { error: unknown }).error;
}

/** What root holds now: nothing, an empty folder, this very dataset, or something else. */
async function inspectRoot(root: string, wanted: Record<string, unknown>): Promise<'absent' | 'empty' | 'same' | 'other'> {
  let entries: string[];
  try {
    entries = await fs.readdir(root);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'absent';
    if (code === 'ENOTDIR') return 'other';
    throw new HgadError('IO', `Cannot read ${root}: ${(e as Error).message}`, 'root');
  }
  if (entries.length === 0) return 'empty';
  try {
    const manifest = JSON.parse(await fs.readFile(path.join(root, DEMO_MANIFEST), 'utf8')) as { identity?: unknown };
    if (JSON.stringify(manifest.identity) === JSON.stringify(wanted)) return 'same';
  } catch { /* no or unreadable manifest: not ours */ }
  return 'other';
}

/**
 * Generates the synthetic demo dataset under options.root (MVTec AD layout):
 * `<class>/train/good/000.png`, `<class>/test/good/...`, `<class>/test/<defect>/...` and
 * `<class>/ground_truth/<defect>/<name>_mask.png` (8-bit single channel, 0 or 255).
 * If root already holds the dataset these options make, it is reused as it is (`reused: true`).
 */
export async function generateDemoDataset(options: DemoDatasetOptions): Promise<DemoDatasetInfo> {
  const o = resolveDemoOptions(options, typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length);
  const root = path.resolve(o.root);
  const { tasks, counts, defects } = plan(o);
  const masks = tasks.filter((t) => t.mask !== null).length;
  const info: DemoDatasetInfo = {
    root, classes: [...o.classes], defects, images: tasks.length, masks, size: o.size, seed: o.seed, counts, reused: false,
  };
  const wanted = identity(o);
  const state = await inspectRoot(root, wanted);
  if (state === 'same') return { ...info, reused: true };
  if (state === 'other') {
    throw new HgadError('IO', `${root} exists and is not an empty folder or an hgad demo dataset made with the same options; ` +
      'choose another root or remove it', 'root');
  }

  const parent = path.dirname(root);
  const temp = path.join(parent, `.${path.basename(root)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await fs.mkdir(parent, { recursive: true });
    await fs.mkdir(temp);
    const dirs = new Set<string>();
    for (const t of tasks) {
      dirs.add(path.dirname(t.image));
      if (t.mask !== null) dirs.add(path.dirname(t.mask));
    }
    for (const d of dirs) await fs.mkdir(path.join(temp, d), { recursive: true });
    await runPool(tasks, o.concurrency, async (t) => {
      const sample = await renderDemoSample({ className: t.className, split: t.split, label: t.label, index: t.index, seed: o.seed, size: o.size });
      await writeDurable(path.join(temp, t.image), sample.image);
      if (t.mask !== null && sample.mask !== null) await writeDurable(path.join(temp, t.mask), sample.mask);
    });
    const { root: _root, reused: _reused, ...summary } = info;
    await writeDurable(path.join(temp, DEMO_MANIFEST), `${JSON.stringify({ generator: 'hgad demo', identity: wanted, summary }, null, 2)}\n`);
    await syncDir(temp);
    if (state === 'empty') await fs.rmdir(root);
    await fs.rename(temp, root);
    await syncDir(parent);
  } catch (e) {
    await fs.rm(temp, { recursive: true, force: true }).catch(() => undefined);
    if (e instanceof HgadError) throw e;
    throw new HgadError('IO', `Could not write the demo dataset to ${root}: ${(e as Error).message}`, 'root');
  }
  return info;
}

/** One paragraph for the CLI: what the generated dataset holds and where. */
export function describeDemoDataset(info: DemoDatasetInfo): string {
  const kinds = info.classes.map((c) => `${c} (${DEMO_CLASS_SPECS.get(c)?.kind ?? 'class'})`).join(', ');
  const perClass = info.classes.map((c) => {
    const k = info.counts[c];
    const defects = (info.defects[c] ?? []).map((d) => `${k?.testDefect[d] ?? 0} ${d}`).join(', ');
    return `${c}: ${k?.train ?? 0} train, ${k?.testGood ?? 0} good and ${defects} test images`;
  }).join('; ');
  return `Synthetic industrial inspection dataset (seed ${info.seed}, ${info.size}x${info.size} px) ` +
    `${info.reused ? 'found' : 'written'} at ${info.root} in the MVTec AD layout: ${info.images} images and ` +
    `${info.masks} pixel masks over ${info.classes.length} classes, ${kinds}. The model trains on defect-free ` +
    `images only; the test images mix defect-free ones with scratches, spots, cracks and missing pieces covering ` +
    `about 0.3% to 5% of the image, each with its ground-truth mask (${perClass}).`;
}
