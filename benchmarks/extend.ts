// npm run bench:extend (issue 15): adding a class to a trained detector against training on both from
// scratch. On ../shared/data: (A) train on one class, evaluate it, add the other with extendDetector,
// evaluate both; (B) train on both classes from scratch with the same backbone, schedule and seed,
// evaluate both. Targets: the added class's image and pixel AUROC within 0.02 of (B); the original
// class's AUROC changed by at most 0.01 by the extension; adding takes at most a fifth of (B)'s
// training time. Evaluation: the authors' protocol (class given, 'batch' normalisation over each
// class's test images) and the calibrated maps stored in the detector (class given).
//
//   node dist/benchmarks/extend.js [--base magnetic_tile] [--add metal_plate] [--seed 0] [--epochs 3]
//     [--passes 4] [--lr 1e-3] [--warmup 1] [--phase1 1] [--backbone ../shared/models/resnet50-imagenet-layer3.onnx]
//     [--taps layer2,layer3] [--size 256] [--reduce 128] [--batch 8] [--threads N] [--limit-per-defect n] [--no-append]
//     [--limit-per-class n] [--flow class|shared] [--class-flow-layers n] [--class-flow-epochs n] [--class-flow-passes n]
//     [--combine logp*nent|logp] (with --flow shared: the added class's maps) [--scratch-only]   (B) alone, printed, not appended
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

import { Dataset, openDataset } from '../lib/data';
import { evaluateDetector } from '../lib/eval/run';
import type { AnomalyDetector } from '../lib/pipeline/detector';
import { CLASS_FLOW_LAYERS, CLASS_FLOW_SCHEDULE, extendDetector } from '../lib/train/extend';
import { train } from '../lib/train/trainer';

const SHARED = path.resolve(__dirname, '..', '..', '..', 'shared');
const RESULTS = path.resolve(__dirname, '..', '..', 'benchmarks', 'RESULTS.md');

interface Metrics {
  image: number;
  pixel: number;
}

async function evaluateClass(detector: AnomalyDetector, dataset: Dataset, c: string, normalization: 'batch' | 'calibrated',
  batchSize: number, limitPerDefect: number | undefined): Promise<Metrics> {
  const { report } = await evaluateDetector(detector, dataset, {
    classes: [c], normalization, batchSize, ...(limitPerDefect ? { limitPerDefect } : {}),
  });
  const m = report.classes[0]!;
  return { image: m.imageAuroc, pixel: m.pixelAuroc };
}

const pct = (x: number): string => (100 * x).toFixed(1);
const load = (): string => {
  try {
    return execFileSync('uptime', { encoding: 'utf8' }).trim();
  } catch {
    return os.loadavg().map((x) => x.toFixed(2)).join(', ');
  }
};

async function main(): Promise<void> {
  const { values } = parseArgs({ options: {
    base: { type: 'string' }, add: { type: 'string' }, seed: { type: 'string' }, epochs: { type: 'string' }, passes: { type: 'string' },
    lr: { type: 'string' }, warmup: { type: 'string' }, phase1: { type: 'string' }, backbone: { type: 'string' }, taps: { type: 'string' },
    size: { type: 'string' }, reduce: { type: 'string' }, batch: { type: 'string' }, threads: { type: 'string' },
    'limit-per-defect': { type: 'string' }, 'no-append': { type: 'boolean' }, 'scratch-only': { type: 'boolean' },
    'limit-per-class': { type: 'string' }, combine: { type: 'string' }, flow: { type: 'string' }, 'class-flow-layers': { type: 'string' },
    'class-flow-epochs': { type: 'string' }, 'class-flow-passes': { type: 'string' },
  } });
  const num = (k: string, d: number): number => (values[k as keyof typeof values] === undefined ? d : Number(values[k as keyof typeof values]));
  const base = String(values.base ?? 'magnetic_tile'), add = String(values.add ?? 'metal_plate');
  const seed = num('seed', 0), batch = num('batch', 8), threads = num('threads', os.availableParallelism());
  const schedule = { metaEpochs: num('epochs', 3), subEpochs: num('passes', 4), lr: num('lr', 1e-3), warmupEpochs: num('warmup', 1), phase1Epochs: num('phase1', 1) };
  const backbone = {
    model: String(values.backbone ?? path.join(SHARED, 'models', 'resnet50-imagenet-layer3.onnx')),
    taps: String(values.taps ?? 'layer2,layer3').split(','), inputSize: num('size', 256),
  };
  const reduce = num('reduce', 128);
  const limitPerDefect = values['limit-per-defect'] === undefined ? undefined : Number(values['limit-per-defect']);
  const dataset = await openDataset({ root: path.join(SHARED, 'data'), layout: 'mvtec' });
  const limitPerClass = values['limit-per-class'] === undefined ? undefined : Number(values['limit-per-class']);
  const common = {
    data: dataset, seed, batchSize: batch, threads, progressBar: false, backbone, reduction: { channels: reduce }, schedule,
    ...(limitPerClass ? { limitPerClass } : {}),
  };
  const loadBefore = load();
  const log = (line: string): void => console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
  const evalBoth = async (d: AnomalyDetector, classes: string[]): Promise<Record<string, { batch: Metrics; calibrated: Metrics }>> => {
    const out: Record<string, { batch: Metrics; calibrated: Metrics }> = {};
    for (const c of classes) {
      out[c] = {
        batch: await evaluateClass(d, dataset, c, 'batch', batch, limitPerDefect),
        calibrated: await evaluateClass(d, dataset, c, 'calibrated', batch, limitPerDefect),
      };
      log(`  ${c}: batch ${pct(out[c]!.batch.image)} / ${pct(out[c]!.batch.pixel)}, calibrated ${pct(out[c]!.calibrated.image)} / ${pct(out[c]!.calibrated.pixel)}`);
    }
    return out;
  };

  if (values['scratch-only']) {
    // (B) alone, in a process of its own beside an (A) run on a shared machine; nothing is appended.
    log(`(B) training on ${base} + ${add} from scratch`);
    const t = Date.now();
    const both = await train({ ...common, classes: [base, add] });
    log(`(B) trained in ${((Date.now() - t) / 1000).toFixed(0)} s`);
    await evalBoth(both, [base, add]);
    await both.dispose();
    log(`uptime: ${load()}`);
    return;
  }

  // (A) one class, then the other added.
  log(`(A) training on ${base}`);
  let t0 = Date.now();
  const single = await train({ ...common, classes: [base] });
  const singleSeconds = (Date.now() - t0) / 1000;
  log(`(A) trained in ${singleSeconds.toFixed(0)} s`);
  const before = await evalBoth(single, [base]);
  log(`(A) adding ${add}`);
  t0 = Date.now();
  const flow = (values.flow ?? 'class') as 'class' | 'shared';
  const combine = (values.combine ?? (flow === 'class' ? 'logp' : 'logp*nent')) as 'logp*nent' | 'logp';
  const classFlow = {
    couplingLayers: num('class-flow-layers', CLASS_FLOW_LAYERS),
    schedule: { metaEpochs: num('class-flow-epochs', CLASS_FLOW_SCHEDULE.metaEpochs), subEpochs: num('class-flow-passes', CLASS_FLOW_SCHEDULE.subEpochs) },
  };
  const baseCombine = single.spec.map.combine;
  const extended = await extendDetector(single, {
    data: dataset, classes: [add], threads, progressBar: false, combine, flow, ...(flow === 'class' ? { classFlow } : {}),
    ...(limitPerClass ? { limitPerClass } : {}),
  });
  const addSeconds = (Date.now() - t0) / 1000;
  log(`(A) added in ${addSeconds.toFixed(1)} s; stale thresholds: ${(extended.spec.staleThresholds ?? []).join(', ') || 'none'}`);
  const tmp = path.join(os.tmpdir(), `hgad-bench-extend-${process.pid}.hgad`);
  await extended.save(tmp);
  const bytes = (await fs.stat(tmp)).size;
  await fs.rm(tmp, { force: true });
  const after = await evalBoth(extended, [base, add]);
  await single.dispose();
  await extended.dispose();

  // (B) both from scratch.
  log(`(B) training on ${base} + ${add} from scratch`);
  t0 = Date.now();
  const both = await train({ ...common, classes: [base, add] });
  const bothSeconds = (Date.now() - t0) / 1000;
  log(`(B) trained in ${bothSeconds.toFixed(0)} s`);
  const scratch = await evalBoth(both, [base, add]);
  await both.dispose();
  const loadAfter = load();

  const args = process.argv.slice(2).join(' ');
  const row = (label: string, m: Record<string, { batch: Metrics; calibrated: Metrics }>, c: string): string =>
    `| ${label} | ${c} | ${pct(m[c]!.batch.image)} / ${pct(m[c]!.batch.pixel)} | ${pct(m[c]!.calibrated.image)} / ${pct(m[c]!.calibrated.pixel)} |`;
  const dImg = Math.abs(after[add]!.batch.image - scratch[add]!.batch.image), dPix = Math.abs(after[add]!.batch.pixel - scratch[add]!.batch.pixel);
  const dOld = Math.max(Math.abs(after[base]!.batch.image - before[base]!.batch.image), Math.abs(after[base]!.batch.pixel - before[base]!.batch.pixel));
  const section = [
    '', `## bench:extend — issue 15: adding a class to a trained detector (${new Date().toISOString().slice(0, 10)})`, '',
    `\`npm run bench:extend${args ? ` -- ${args}` : ''}\`. Machine: ${os.cpus()[0]?.model ?? 'cpu'}, ${os.availableParallelism()} cores, ` +
      `Node ${process.version}, shared with other jobs: \`uptime\` before: ${loadBefore}; after: ${loadAfter}.`, '',
    `Configuration (both arms): backbone ${path.basename(backbone.model)}, taps ${backbone.taps.join(', ')} at ${backbone.inputSize} px, ` +
      `each level standardised and reduced to ${reduce} channels; flow K = 12, P = 256, M = 10; ${schedule.metaEpochs} meta epochs x ` +
      `${schedule.subEpochs} passes, lr ${schedule.lr}, warm-up ${schedule.warmupEpochs}, phase 1 for ${schedule.phase1Epochs}; batch ${batch}; seed ${seed}; ` +
      `${threads} threads${limitPerClass ? `; at most ${limitPerClass} training images per class` : ''}. (A) trains on ${base} alone, then extendDetector adds ${add} (the shared flow and ${base} frozen; ` +
      `${add}'s centres in it trained with the same schedule on its latents; ` +
      (flow === 'class'
        ? `a flow of ${add}'s own (K = ${classFlow.couplingLayers}, ${classFlow.schedule.metaEpochs} meta epochs x ${classFlow.schedule.subEpochs} passes on its images) makes its maps; `
        : `its maps from the shared flow; `) +
      `its threshold calibrated on its 10% hold-out; maps: ${base} keeps ${baseCombine}, ${add} ${combine}); (B) trains on both from scratch. Test split ` +
      `${limitPerDefect ? `limited to ${limitPerDefect} images per defect type` : 'complete'}; class given. AUROC in %.`, '',
    '| model | class | image / pixel AUROC (batch, authors\') | image / pixel AUROC (calibrated) |', '|---|---|---|---|',
    row(`(A) ${base} alone`, before, base),
    row(`(A) + ${add} added`, after, base),
    row(`(A) + ${add} added`, after, add),
    row('(B) both from scratch', scratch, base),
    row('(B) both from scratch', scratch, add), '',
    `Times: (A) training on ${base} ${singleSeconds.toFixed(0)} s; adding ${add} ${addSeconds.toFixed(1)} s (latents, training, calibration); ` +
      `(B) training from scratch ${bothSeconds.toFixed(0)} s. Extended detector file: ${(bytes / 1e6).toFixed(1)} MB; stale thresholds: ` +
      `${(extended.spec.staleThresholds ?? []).join(', ') || 'none'}.`, '',
    'Targets of issue 15:',
    `- ${add} image / pixel AUROC within 0.02 of from scratch: ${dImg <= 0.02 && dPix <= 0.02 ? '**met**' : '**missed**'} ` +
      `(added minus from scratch: ${(100 * (after[add]!.batch.image - scratch[add]!.batch.image)).toFixed(1)} / ` +
      `${(100 * (after[add]!.batch.pixel - scratch[add]!.batch.pixel)).toFixed(1)} points, batch protocol; not worse than from scratch by more ` +
      `than 0.02: ${after[add]!.batch.image >= scratch[add]!.batch.image - 0.02 && after[add]!.batch.pixel >= scratch[add]!.batch.pixel - 0.02 ? 'yes' : 'no'}).`,
    `- ${base} AUROC changed by at most 0.01 by the extension: ${dOld <= 0.01 ? '**met**' : '**missed**'} (largest change ${(100 * dOld).toFixed(2)} points).`,
    `- adding at most a fifth of from-scratch training time: ${addSeconds <= bothSeconds / 5 ? '**met**' : '**missed**'} ` +
      `(${addSeconds.toFixed(1)} s vs ${bothSeconds.toFixed(0)} s, ${(100 * addSeconds / bothSeconds).toFixed(1)}%).`, '',
  ].join('\n');
  console.log(section);
  if (!values['no-append']) await fs.appendFile(RESULTS, section);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
