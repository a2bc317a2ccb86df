// npm run bench:quality: does one unified HGAD model match one model per class, and beat a unified
// single-Gaussian flow (HGAD.md sections 1, 4)? On ../shared/data (magnetic_tile, metal_plate) with
// the MobileNetV2 int8 backbone it trains, per seed: (a) one unified HGAD model, (b) one HGAD model
// per class, (c) one unified single-Gaussian model, (d) one unified inter-only model - same backbone,
// input size, schedule and seed - and evaluates each on the test split with the authors' protocol
// (class given; 'batch' normalisation over each class's test images, as the authors evaluate one
// class at a time), plus the calibrated numbers of (a), and (nn) the nearest-neighbour reference
// (PatchCore-style, benchmarks/nn-reference.ts) on the same backbone taps, with a per-class and an
// all-classes memory bank. With the variant nn-latent (beside unified), the same search also runs in
// each unified detector's flow latent space (rows '(a) unified HGAD, latent search, ...'). The Markdown
// table is appended to benchmarks/RESULTS.md.
//
//   node dist/benchmarks/quality.js [--seeds 0,1] [--epochs 3] [--passes 4] [--lr 1e-3] [--warmup 1]
//     [--phase1 1] [--size 256] [--taps a,b,c] [--batch 8] [--threads N] [--limit-per-defect n]
//     [--reduce n] [--standardize true|false] [--local-average true] [--projection random|pca] [--whiten true]
//     [--variants unified,per-class,single,inter,nn,nn-latent] [--nn-cap 16384] [--nn-only] [--no-append]
//     [--validate]   settings check on a split of the TRAINING images (quality-validation.ts), where
//                    [--combines logp*nent,logp] [--densities latent,full] are measured on each detector
//     [--precision-guard] [--limit-per-class n]   the bf16 quality guard instead (precision-guard.ts):
//                    one unified HGAD model per arm, seed = the first of --seeds
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

import type { Prior } from '../lib/config';
import { Dataset, openDataset } from '../lib/data';
import { evaluateDetector } from '../lib/eval/run';
import type { AnomalyDetector } from '../lib/pipeline/detector';
import { Density, DENSITIES } from '../lib/model';
import { MAP_METHODS, MapMethod } from '../lib/pipeline/latent-banks';
import { PROJECTIONS, Projection } from '../lib/pipeline/reduction';
import { MAP_COMBINES, MapCombine } from '../lib/pipeline/spec';
import { train } from '../lib/train/trainer';
import type { BackboneChoice } from '../lib/pipeline/backbone-spec';
import type { Precision } from '../lib/precision';
import { DEFAULT_NN_CAP, nnNote, NnReferenceResult, runNnReference } from './nn-reference';
import { guardSection, runPrecisionGuard } from './precision-guard';
import { buildValidationSplit, SYNTHETIC_KINDS } from './quality-validation';

const SHARED = path.resolve(__dirname, '..', '..', '..', 'shared');
const RESULTS = path.resolve(__dirname, '..', '..', 'benchmarks', 'RESULTS.md');
const CLASSES = ['magnetic_tile', 'metal_plate'];

interface Metrics {
  image: number;
  pixel: number;
  aupro: number;
}

/** One variant's numbers for one seed: per class and mean, training seconds and images/s. */
interface Run {
  variant: string;
  seed: number;
  perClass: Record<string, Metrics>;
  trainSeconds: number;
  imagesPerSecond: number;
}

const VARIANTS: Record<string, { label: string; prior: Prior; unified: boolean }> = {
  unified: { label: '(a) unified HGAD', prior: 'hgad', unified: true },
  'per-class': { label: '(b) HGAD, one model per class', prior: 'hgad', unified: false },
  single: { label: '(c) unified single Gaussian', prior: 'single-gaussian', unified: true },
  inter: { label: '(d) unified inter-only', prior: 'inter-only', unified: true },
};
// Not a flow: runNn, below.
const NN = 'nn';
const NN_LABELS = { perClass: 'NN reference, per-class bank', allClasses: 'NN reference, all-classes bank' };
// Not a flow either: the same search in the unified detector's flow latent space, run with (a).
const NN_LATENT = 'nn-latent';
const LATENT_LABELS = { perClass: '(a) unified HGAD, latent search, per-class bank', allClasses: '(a) unified HGAD, latent search, all-classes bank' };

interface Settings {
  seeds: number[];
  epochs: number;
  passes: number;
  lr: number;
  warmup: number;
  phase1: number;
  size: number;
  backbone: string;
  taps: string[];
  reduce: number | null;
  standardize: boolean;
  localAverage: boolean;
  projection: Projection;
  whiten: boolean;
  batch: number;
  threads: number;
  limitPerDefect: number | undefined;
  limitPerClass: number | undefined;
  variants: string[];
  combines: MapCombine[] | null;
  densities: Density[] | null;
  nnCap: number;
  /** What the flows' anomaly maps are (TrainOptions.maps); 'nearest' banks hold nnCap vectors. */
  maps: MapMethod;
}

function settingsOf(values: Record<string, string | boolean | undefined>): Settings {
  const num = (k: string, d: number): number => (values[k] === undefined ? d : Number(values[k]));
  const variants = values['nn-only'] ? [NN] : String(values.variants ?? `unified,per-class,single,inter,${NN}`).split(',');
  for (const v of variants) if (!(v in VARIANTS) && v !== NN && v !== NN_LATENT) throw new Error(`--variants: unknown variant ${v}`);
  if (variants.includes(NN_LATENT) && !variants.includes('unified')) throw new Error(`--variants: ${NN_LATENT} searches the unified detector's latents; add unified`);
  return {
    seeds: String(values.seeds ?? '0,1').split(',').map(Number),
    epochs: num('epochs', 3), passes: num('passes', 4), lr: num('lr', 1e-3), warmup: num('warmup', 1), phase1: num('phase1', 1),
    size: num('size', 256),
    backbone: String(values.backbone ?? path.join(SHARED, 'models', 'mobilenetv2-12-int8.onnx')),
    taps: String(values.taps ?? '365_quantized,426_quantized,452_quantized').split(','),
    reduce: values.reduce === undefined ? null : Number(values.reduce),
    standardize: values.standardize === undefined ? values.reduce !== undefined : values.standardize === 'true',
    localAverage: values['local-average'] === 'true',
    projection: projectionOf(values.projection),
    whiten: values.whiten === 'true',
    batch: num('batch', 8), threads: num('threads', os.availableParallelism()),
    limitPerDefect: values['limit-per-defect'] === undefined ? undefined : Number(values['limit-per-defect']),
    limitPerClass: values['limit-per-class'] === undefined ? undefined : Number(values['limit-per-class']),
    variants, nnCap: num('nn-cap', DEFAULT_NN_CAP),
    maps: mapsOf(values.maps),
    combines: values.combines === undefined ? null : String(values.combines).split(',').map((c) => {
      if (!(MAP_COMBINES as readonly string[]).includes(c)) throw new Error(`--combines: unknown map combination ${c}`);
      return c as MapCombine;
    }),
    densities: values.densities === undefined ? null : String(values.densities).split(',').map((d) => {
      if (!(DENSITIES as readonly string[]).includes(d)) throw new Error(`--densities: unknown density ${d}`);
      return d as Density;
    }),
  };
}

function mapsOf(v: string | boolean | undefined): MapMethod {
  if (v === undefined) return 'density';
  if (!(MAP_METHODS as readonly unknown[]).includes(v)) throw new Error(`--maps: one of ${MAP_METHODS.join(', ')}, not ${String(v)}`);
  return v as MapMethod;
}

function projectionOf(v: string | boolean | undefined): Projection {
  if (v === undefined) return 'random';
  if (!(PROJECTIONS as readonly unknown[]).includes(v)) throw new Error(`--projection: one of ${PROJECTIONS.join(', ')}, not ${String(v)}`);
  return v as Projection;
}

/** The backbone of every row, flows and NN reference alike. */
function backboneOf(s: Settings): BackboneChoice {
  return { model: s.backbone, taps: s.taps, inputSize: s.size };
}

async function trainOne(dataset: Dataset, classes: string[], prior: Prior, seed: number, s: Settings, precision: Precision = 'fp32'):
  Promise<{ detector: AnomalyDetector; seconds: number; images: number }> {
  const started = Date.now();
  let images = 0;
  const detector = await train({
    data: dataset, classes, prior, seed, batchSize: s.batch, threads: s.threads, progressBar: false, precision,
    maps: s.maps, ...(s.maps === 'nearest' ? { bankSize: s.nnCap } : {}),
    ...(s.limitPerClass ? { limitPerClass: s.limitPerClass } : {}),
    backbone: backboneOf(s),
    ...(s.reduce !== null || s.standardize || s.localAverage || s.projection !== 'random'
      ? { reduction: { ...(s.reduce !== null ? { channels: s.reduce } : {}), standardize: s.standardize, localAverage: s.localAverage, projection: s.projection, whiten: s.whiten } }
      : {}),
    schedule: { metaEpochs: s.epochs, subEpochs: s.passes, lr: s.lr, warmupEpochs: s.warmup, phase1Epochs: s.phase1 },
    onProgress: (p) => {
      images = p.step * s.batch;
    },
  });
  return { detector, seconds: (Date.now() - started) / 1000, images };
}

/** The authors' protocol: class given, each class normalised over its own test images. */
async function evaluateClasses(detector: AnomalyDetector, dataset: Dataset, classes: string[], s: Settings,
  normalization: 'batch' | 'calibrated', inferClass = false): Promise<Record<string, Metrics>> {
  const out: Record<string, Metrics> = {};
  for (const c of classes) {
    const { report } = await evaluateDetector(detector, dataset, {
      classes: [c], normalization, batchSize: s.batch, inferClass, ...(s.limitPerDefect ? { limitPerDefect: s.limitPerDefect } : {}),
    });
    const m = report.classes[0]!;
    out[c] = { image: m.imageAuroc, pixel: m.pixelAuroc, aupro: m.aupro };
  }
  return out;
}

/** The NN reference's two rows; `notes` gets its bank sizes and times for the table. */
async function runNn(dataset: Dataset, seed: number, s: Settings, log: (line: string) => void, notes: string[]): Promise<Run[]> {
  const r = await runNnReference({
    dataset, classes: CLASSES, backbone: backboneOf(s), seed, cap: s.nnCap, batchSize: s.batch, threads: s.threads,
    ...(s.limitPerDefect ? { limitPerDefect: s.limitPerDefect } : {}), log,
  });
  notes.push(`Seed ${seed}: ${nnNote(r)}`);
  // 'training' for the reference is building the banks.
  const base = { seed, trainSeconds: r.seconds.bank, imagesPerSecond: r.trainImages / r.seconds.bank };
  return [{ ...base, variant: NN_LABELS.perClass, perClass: r.perClassBank }, { ...base, variant: NN_LABELS.allClasses, perClass: r.allClassesBank }];
}

/** The reference's search in a trained detector's flow latent space (benchmarks/nn-reference.ts). */
function latentSearch(detector: AnomalyDetector, dataset: Dataset, seed: number, s: Settings, log: (line: string) => void): Promise<NnReferenceResult> {
  return runNnReference({
    dataset, classes: CLASSES, detector, seed, cap: s.nnCap, batchSize: s.batch, threads: s.threads,
    ...(s.limitPerDefect ? { limitPerDefect: s.limitPerDefect } : {}), log,
  });
}

async function runVariant(key: string, dataset: Dataset, seed: number, s: Settings, log: (line: string) => void, notes: string[]): Promise<Run[]> {
  const v = VARIANTS[key]!;
  const groups = v.unified ? [CLASSES] : CLASSES.map((c) => [c]);
  const perClass: Record<string, Metrics> = {};
  let calibrated: Record<string, Metrics> | null = null;
  let inferred: Record<string, Metrics> | null = null;
  let latent: NnReferenceResult | null = null;
  let seconds = 0, images = 0;
  for (const classes of groups) {
    const t = await trainOne(dataset, classes, v.prior, seed, s);
    seconds += t.seconds;
    images += t.images;
    Object.assign(perClass, await evaluateClasses(t.detector, dataset, classes, s, 'batch'));
    if (key === 'unified') {
      // Distance maps need no normalisation: 'calibrated' gives the 'batch' maps (nearest-maps.test.ts checks it).
      calibrated = t.detector.spec.map.nearest ? { ...perClass } : await evaluateClasses(t.detector, dataset, classes, s, 'calibrated');
      inferred = await evaluateClasses(t.detector, dataset, classes, s, 'calibrated', true);
      if (s.variants.includes(NN_LATENT)) latent = await latentSearch(t.detector, dataset, seed, s, log);
    }
    await t.detector.dispose();
  }
  const run: Run = { variant: v.label, seed, perClass, trainSeconds: seconds, imagesPerSecond: images / seconds };
  log(`${v.label} seed ${seed}: ${JSON.stringify(perClass)} in ${seconds.toFixed(0)} s`);
  const runs = [run];
  if (calibrated) {
    runs.push({ ...run, variant: '(a) unified HGAD, calibrated maps', perClass: calibrated });
    log(`  calibrated: ${JSON.stringify(calibrated)}`);
  }
  if (inferred) {
    runs.push({ ...run, variant: '(a) unified HGAD, class inferred, calibrated maps', perClass: inferred });
    log(`  class inferred, calibrated: ${JSON.stringify(inferred)}`);
  }
  if (latent) {
    // 'training' for these rows is the flow's training plus building the banks.
    const base = { seed, trainSeconds: seconds + latent.seconds.bank, imagesPerSecond: images / seconds };
    runs.push({ ...base, variant: LATENT_LABELS.perClass, perClass: latent.perClassBank }, { ...base, variant: LATENT_LABELS.allClasses, perClass: latent.allClassesBank });
    notes.push(`Seed ${seed}: ${nnNote(latent)}`);
  }
  return runs;
}

const pct = (v: number): string => (Number.isNaN(v) ? 'n/a' : (100 * v).toFixed(1));

/** Mean over seeds ± half the range (the spread of two seeds). */
function spread(values: number[]): string {
  const ok = values.filter((v) => !Number.isNaN(v));
  if (ok.length === 0) return 'n/a';
  const mean = ok.reduce((a, b) => a + b, 0) / ok.length;
  const half = (Math.max(...ok) - Math.min(...ok)) / 2;
  return ok.length > 1 ? `${pct(mean)} ± ${pct(half)}` : pct(mean);
}

function meanOf(m: Record<string, Metrics>, key: keyof Metrics): number {
  const vals = CLASSES.map((c) => m[c]?.[key] ?? NaN).filter((v) => !Number.isNaN(v));
  return vals.length ? vals.reduce((a, b) => a + b, 0) / vals.length : NaN;
}

function table(runs: Run[]): string {
  const labels = [...new Set(runs.map((r) => r.variant))];
  const lines = [
    '| model | class | image AUROC | pixel AUROC | AUPRO@30% | per seed (image / pixel) | training s | images/s |',
    '|---|---|---:|---:|---:|---|---:|---:|',
  ];
  for (const label of labels) {
    const rs = runs.filter((r) => r.variant === label);
    for (const c of [...CLASSES, 'mean']) {
      const get = (r: Run, k: keyof Metrics): number => (c === 'mean' ? meanOf(r.perClass, k) : r.perClass[c]?.[k] ?? NaN);
      const seeds = rs.map((r) => `s${r.seed}: ${pct(get(r, 'image'))} / ${pct(get(r, 'pixel'))}`).join('; ');
      const timing = c === 'mean' && !label.includes('calibrated') && label !== NN_LABELS.allClasses
        ? `${rs.map((r) => r.trainSeconds.toFixed(0)).join(', ')} | ${rs.map((r) => r.imagesPerSecond.toFixed(1)).join(', ')}`
        : ' | ';
      lines.push(`| ${c === 'mean' ? `**${label}**` : label} | ${c === 'mean' ? '**mean**' : c} | ${spread(rs.map((r) => get(r, 'image')))} | ` +
        `${spread(rs.map((r) => get(r, 'pixel')))} | ${spread(rs.map((r) => get(r, 'aupro')))} | ${seeds} | ${timing} |`);
    }
  }
  return lines.join('\n');
}

function targets(runs: Run[]): string[] {
  const mean = (label: string, k: keyof Metrics): number => {
    const rs = runs.filter((r) => r.variant === label);
    return rs.reduce((a, r) => a + meanOf(r.perClass, k), 0) / rs.length;
  };
  const a = VARIANTS.unified!.label, b = VARIANTS['per-class']!.label, c = VARIANTS.single!.label;
  const out: string[] = [];
  const ai = mean(a, 'image'), ap = mean(a, 'pixel');
  out.push(`- unified HGAD mean image AUROC >= 90.0: ${pct(ai)} (${ai >= 0.9 ? 'met' : `missed by ${pct(0.9 - ai)} points`}); ` +
    `pixel AUROC >= 90.0: ${pct(ap)} (${ap >= 0.9 ? 'met' : `missed by ${pct(0.9 - ap)} points`})`);
  if (runs.some((r) => r.variant === b)) {
    const bi = mean(b, 'image');
    out.push(`- unified within 2.0 points of per-class (image AUROC): ${pct(ai)} vs ${pct(bi)}, gap ${pct(bi - ai)} ` +
      `(${bi - ai <= 0.02 ? 'met' : `missed by ${pct(bi - ai - 0.02)} points`})`);
  }
  if (runs.some((r) => r.variant === c)) {
    const ci = mean(c, 'image'), cp = mean(c, 'pixel');
    out.push(`- unified HGAD above unified single Gaussian: image ${pct(ai)} vs ${pct(ci)}, pixel ${pct(ap)} vs ${pct(cp)} ` +
      `(${ai > ci ? 'met' : 'missed'} on image AUROC)`);
  }
  return out;
}

/** The validation split seen through one synthetic defect kind: its test split keeps the normals and that kind. */
function defectView(dataset: Dataset, kind: string): Dataset {
  return {
    root: dataset.root, roots: dataset.roots, layout: dataset.layout, classes: dataset.classes,
    samples: (split, className) => dataset.samples(split, className).filter((x) => split === 'train' || x.label === 0 || x.defect === kind),
  };
}

const VALIDATION_KINDS = [SYNTHETIC_KINDS.cutPaste, SYNTHETIC_KINDS.subtle, SYNTHETIC_KINDS.uneven, SYNTHETIC_KINDS.band];
const kindLine = (m: Record<string, Metrics>): string =>
  Object.entries(m).map(([c, x]) => `${c} image ${pct(x.image)} pixel ${pct(x.pixel)} aupro ${pct(x.aupro)}`).join('; ');

async function validate(s: Settings): Promise<void> {
  const dataset = await openDataset({ root: path.join(SHARED, 'data'), layout: 'mvtec' });
  const root = path.join(os.tmpdir(), `hgad-quality-validation-${process.pid}`);
  const split = await buildValidationSplit(dataset, CLASSES, root, 1234);
  const val = await openDataset({ root, layout: 'mvtec' });
  console.log(`validation split: ${split.trainImages} training images, ${split.testImages} validation images ` +
    `(normals, and a copy of each with a ${VALIDATION_KINDS.join(' and a copy with a ')} defect; each kind evaluated against the normals)`);
  for (const seed of s.seeds) {
    for (const key of s.variants) {
      if (key === NN) {
        // The reference on the same split, so every validation figure has its reference beside it.
        for (const kind of VALIDATION_KINDS) {
          const r = await runNnReference({ dataset: defectView(val, kind), classes: CLASSES, backbone: backboneOf(s), seed, cap: s.nnCap, batchSize: s.batch, threads: s.threads });
          console.log(`validation NN reference (per-class bank) seed ${seed} [${kind}]: ${kindLine(r.perClassBank)}`);
        }
        continue;
      }
      if (key === NN_LATENT) continue; // runs with unified
      const v = VARIANTS[key]!;
      for (const classes of v.unified ? [CLASSES] : CLASSES.map((c) => [c])) {
        const t = await trainOne(val, classes, v.prior, seed, s);
        if (key === 'unified' && s.variants.includes(NN_LATENT)) {
          for (const kind of VALIDATION_KINDS) {
            const r = await latentSearch(t.detector, defectView(val, kind), seed, s, () => undefined);
            console.log(`validation ${LATENT_LABELS.perClass} seed ${seed} [${kind}]: ${kindLine(r.perClassBank)}`);
          }
        }
        // The map combination is a scoring setting: every one asked for is measured on the same detector.
        for (const combine of s.combines ?? [t.detector.spec.map.combine]) {
          for (const density of s.densities ?? [t.detector.spec.map.density]) {
            t.detector.spec = { ...t.detector.spec, map: { ...t.detector.spec.map, combine, density } };
            for (const kind of VALIDATION_KINDS) {
              const m = await evaluateClasses(t.detector, defectView(val, kind), classes, s, 'batch');
              console.log(`validation ${v.label} seed ${seed} map ${combine}, ${density} density [${kind}] (${t.seconds.toFixed(0)} s): ${kindLine(m)}`);
            }
          }
        }
        await t.detector.dispose();
      }
    }
  }
  await fs.rm(root, { recursive: true, force: true });
}

async function precisionGuard(s: Settings, append: boolean): Promise<void> {
  const started = Date.now();
  const dataset = await openDataset({ root: path.join(SHARED, 'data'), layout: 'mvtec' });
  const seed = s.seeds[0]!;
  const seconds: Record<string, number> = {};
  const result = await runPrecisionGuard(dataset, CLASSES, async (precision) => {
    const t = await trainOne(dataset, CLASSES, 'hgad', seed, s, precision);
    seconds[precision] = t.seconds;
    console.log(`guard: trained with ${precision} GEMMs in ${t.seconds.toFixed(0)} s`);
    return t.detector;
  }, { batchSize: s.batch, ...(s.limitPerDefect ? { limitPerDefect: s.limitPerDefect } : {}) }, (l) => console.log(l));
  const args = process.argv.slice(2).join(' ');
  const setup = `Setup: \`npm run bench:quality -- ${args}\` (whole run ${((Date.now() - started) / 60000).toFixed(1)} min), ` +
    `${os.cpus()[0]?.model ?? 'cpu'}, ${s.threads} threads, shared machine (load at the end: ` +
    `${os.loadavg().map((l) => l.toFixed(2)).join(', ')}). Both arms: unified HGAD on ${CLASSES.join(', ')}, ` +
    `${s.limitPerClass ? `the first ${s.limitPerClass} training images per class` : 'full training sets'}, backbone ` +
    `${path.basename(s.backbone)} (${s.taps.join(', ')}) at ${s.size} px, ${s.epochs} meta epochs x ${s.passes} passes, ` +
    `lr ${s.lr}, batch ${s.batch}, seed ${seed}; test split ${s.limitPerDefect ? `limited to ${s.limitPerDefect} images per defect type` : 'complete'}, ` +
    `'batch' normalisation (the authors' protocol), AUROC as the mean of the two classes. Training: fp32 ` +
    `${seconds.fp32?.toFixed(0)} s, mixed precision ${seconds.bf16?.toFixed(0)} s.`;
  const section = ['', `## bench:quality --precision-guard — bf16 scoring and mixed-precision training (${new Date().toISOString().slice(0, 10)})`, '',
    guardSection(result, setup), ''].join('\n');
  console.log(section);
  if (append) await fs.appendFile(RESULTS, section);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: {
    seeds: { type: 'string' }, epochs: { type: 'string' }, passes: { type: 'string' }, lr: { type: 'string' },
    warmup: { type: 'string' }, phase1: { type: 'string' }, size: { type: 'string' }, taps: { type: 'string' },
    backbone: { type: 'string' }, reduce: { type: 'string' }, standardize: { type: 'string' }, combines: { type: 'string' }, densities: { type: 'string' }, 'local-average': { type: 'string' },
    projection: { type: 'string' }, whiten: { type: 'string' },
    batch: { type: 'string' }, threads: { type: 'string' }, 'limit-per-defect': { type: 'string' },
    variants: { type: 'string' }, 'no-append': { type: 'boolean' }, validate: { type: 'boolean' },
    'nn-cap': { type: 'string' }, 'nn-only': { type: 'boolean' }, maps: { type: 'string' },
    'precision-guard': { type: 'boolean' }, 'limit-per-class': { type: 'string' },
  } });
  const s = settingsOf(values);
  if (values['precision-guard']) return precisionGuard(s, !values['no-append']);
  if (values.validate) return validate(s);
  const started = Date.now();
  const dataset = await openDataset({ root: path.join(SHARED, 'data'), layout: 'mvtec' });
  const runs: Run[] = [];
  const nnNotes: string[] = [];
  for (const seed of s.seeds) {
    for (const key of s.variants) {
      if (key === NN_LATENT) continue; // runs with unified
      runs.push(...(key === NN ? await runNn(dataset, seed, s, (l) => console.log(l), nnNotes) : await runVariant(key, dataset, seed, s, (l) => console.log(l), nnNotes)));
    }
  }
  const minutes = (Date.now() - started) / 60000;
  const args = process.argv.slice(2).join(' ');
  const command = args ? `npm run bench:quality -- ${args}` : 'npm run bench:quality';
  const cpu = os.cpus()[0]?.model ?? 'cpu';
  const section = [
    '', `## bench:quality — unified HGAD vs per-class and single-Gaussian flows (${new Date().toISOString().slice(0, 10)})`, '',
    `\`${command}\` (whole run ${minutes.toFixed(1)} min).`, '',
    `Machine: ${cpu}, ${os.availableParallelism()} cores, Node ${process.version}. Data: ../shared/data ` +
      `(${CLASSES.join(', ')}; full training sets, 10% of them held out for calibration; test split ` +
      `${s.limitPerDefect ? `limited to ${s.limitPerDefect} images per defect type` : 'complete'}). Backbone ` +
      `${path.basename(s.backbone)}, taps ${s.taps.join(', ')} at ${s.size} px${s.reduce !== null ? `, reduced to ${s.reduce} channels${s.standardize ? ' (standardised)' : ''}${s.projection === 'pca' ? `, principal directions${s.whiten ? ' (whitened)' : ''}` : ''}` : ''}${s.localAverage ? ', 3x3 local averaging' : ''}; flow K = 12, P = 256, M = 10 (1 for (c), (d)); ` +
      `${s.epochs} meta epochs x ${s.passes} passes, lr ${s.lr} (warm-up ${s.warmup}, phase 1 for ${s.phase1} meta epochs), ` +
      `batch ${s.batch}, ${s.threads} threads; seeds ${s.seeds.join(', ')}. Maps: ${s.maps === 'nearest'
        ? `latent nearest-neighbour distances (banks of at most ${s.nnCap} vectors per class and level)` : 'the flow\'s density'}.`, '',
    'Protocol: the authors\' (class given; maps normalised over each class\'s test images, \'batch\'); the ' +
      '"calibrated" row uses the constants stored with the model (measured on held-out normal training images). ' +
      'Metrics in %, mean over seeds ± half their range; training seconds (summed over the models of a row, ' +
      'decoding and backbone included) and training images/s (images x passes / s) per seed.', '',
    table(runs), '', ...(nnNotes.length ? [...nnNotes, ''] : []),
    ...(runs.some((r) => r.variant === VARIANTS.unified!.label) ? ['Targets (issue 5: unified vs per-class and single-Gaussian):', ...targets(runs), ''] : []),
  ].join('\n');
  console.log(section);
  if (!values['no-append']) await fs.appendFile(RESULTS, section);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
