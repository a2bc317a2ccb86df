// npm run bench:pipeline: images/s of scoring end to end and of each stage alone (decode with sharp,
// backbone with onnxruntime, flow + maps in the native core), on the real images in ../shared/data with
// the real MobileNetV2 int8 backbone. The baseline, measured in the same run, is the same work with
// the stages run one after another (no overlap); the pipelined run should approach the slowest stage.
//
//   node dist/benchmarks/pipeline.js [--images 256] [--batch 8] [--threads N] [--size 256]
//     [--backbone PATH --taps a,b [--reduce 128]]   (default: MobileNetV2 int8, its three taps, no reduction)
//     [--maps nearest [--limit-per-class 64]]      (latent nearest-neighbour maps; the banks fill to
//                                                  16384 vectors per class at layer3 from 64 images)
// With --maps nearest the flow stage also maps every position to its latent (a second flow pass) and the
// maps stage is the search against the class's banks plus the distance maps.
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

import { imageBatches, ImageBatch, openDataset, Sample } from '../lib/data';
import type { FeatureLevel } from '../lib/features/backbone';
import { flowStage } from '../lib/pipeline/flow-stage';
import { nearestMaps, pooledLatents } from '../lib/pipeline/latent-banks';
import type { Precision } from '../lib/precision';
import { anomalyMaps } from '../lib/score/maps';
import { scoreImages } from '../lib/score/scorer';
import { train } from '../lib/train/trainer';

const SHARED = path.resolve(__dirname, '..', '..', '..', 'shared');

async function main(): Promise<void> {
  const { values } = parseArgs({ options: {
    images: { type: 'string', default: '256' }, batch: { type: 'string', default: '8' },
    threads: { type: 'string', default: String(os.availableParallelism()) }, size: { type: 'string', default: '256' },
    backbone: { type: 'string' }, taps: { type: 'string' }, reduce: { type: 'string' },
    maps: { type: 'string', default: 'density' }, 'limit-per-class': { type: 'string', default: '16' },
  } });
  if (values.maps !== 'density' && values.maps !== 'nearest') throw new Error(`--maps: density or nearest, not ${values.maps}`);
  const nearest = values.maps === 'nearest';
  const count = Number(values.images), batchSize = Number(values.batch), threads = Number(values.threads), size = Number(values.size);
  const dataset = await openDataset({ root: path.join(SHARED, 'data'), layout: 'mvtec' });
  // A detector at the paper's flow configuration (K = 12, M = 10, P = 256); one short pass of training
  // is enough for timing, which does not depend on the weights.
  const detector = await train({
    data: dataset, limitPerClass: Number(values['limit-per-class']), maps: nearest ? 'nearest' : 'density', backbone: {
      model: values.backbone ?? path.join(SHARED, 'models', 'mobilenetv2-12-int8.onnx'),
      taps: values.taps?.split(',') ?? ['365_quantized', '426_quantized', '452_quantized'], inputSize: size,
    },
    ...(values.reduce !== undefined ? { reduction: { channels: Number(values.reduce) } } : {}),
    schedule: { metaEpochs: 1, subEpochs: 1 }, threads, progressBar: false,
  });
  const samples: Sample[] = [];
  const tests = dataset.classes.flatMap((c) => dataset.samples('test', c));
  for (let i = 0; samples.length < count; i++) samples.push(tests[i % tests.length]!);
  await detector.backbone();
  const levels = detector.model.config.levels.map((l) => l.channels);
  const mapSize = { height: detector.mapSize, width: detector.mapSize, sigma: 4 };
  const constants = detector.spec.calibration!;

  // Warm-up: first runs allocate and JIT.
  for await (const r of scoreImages(detector, samples.slice(0, 2 * batchSize).map((s) => s.path))) void r;

  const time = async (f: () => Promise<void>): Promise<number> => {
    const t = process.hrtime.bigint();
    await f();
    return Number(process.hrtime.bigint() - t) / 1e9;
  };
  const batches: ImageBatch[] = [];
  const decode = await time(async () => {
    for await (const b of imageBatches(samples, { batchSize, size: { width: size, height: size }, concurrency: 2 * threads })) batches.push(b);
  });
  const features: FeatureLevel[][] = [];
  const extract = await time(async () => {
    for (const b of batches) features.push(await detector.features(b.pixels, b.batch));
  });
  const staged: Awaited<ReturnType<typeof flowStage>>[] = [];
  const latents: FeatureLevel[][] = [];
  const flow = await time(async () => {
    for (const f of features) {
      const st = await flowStage(detector.model, f, null, detector.spec.map.density, detector.classFlows);
      staged.push(st);
      if (nearest) latents.push(await pooledLatents(detector.model, detector.classFlows, f, st.classIndex, detector.spec.map.nearest?.coarse === true));
    }
  });
  const searchAt = (precision: Precision): Promise<number> => time(async () => {
    for (const [i, s] of staged.entries()) {
      if (nearest) await nearestMaps(detector.banks, detector.classes, latents[i]!, s.classIndex, mapSize, precision);
      else await anomalyMaps(s.levels, s.classIndex.length, constants, mapSize);
    }
  });
  const searchPrecision = detector.model.precision.inference;
  const maps = await searchAt(searchPrecision);
  // The search's baseline in the same run: fp32 products (what the search ran at before bf16).
  const fp32Maps = nearest && searchPrecision === 'bf16' ? await searchAt('fp32') : null;
  let scored = 0;
  const pipelined = await time(async () => {
    for await (const r of scoreImages(detector, samples.map((s) => s.path), { batchSize })) if (r) scored += 1;
  });
  await detector.dispose();

  const sequential = decode + extract + flow + maps;
  const rate = (s: number): string => `${(count / s).toFixed(1)} img/s`;
  console.log(`hgad bench:pipeline — ${count} test images of ${dataset.classes.join(', ')} at ${size}px, batch ${batchSize}, ` +
    `${threads} threads, ${os.cpus()[0]?.model ?? 'cpu'} (${os.availableParallelism()} cores)`);
  console.log(`flow levels: ${levels.join('/')} channels, ${detector.model.config.couplingLayers} coupling blocks, ` +
    `${detector.model.config.centersPerClass} centres per class; maps ${detector.mapSize}px, ${nearest
      ? `latent nearest-neighbour (bank vectors per level: ${detector.classes.map((c) => `${c} ${detector.banks.vectors(c, detector.bankChannels()).join('/')}`).join(', ')})`
      : 'flow density'}`);
  console.log('| stage | seconds | images/s | share of the stages\' time |');
  console.log('|---|---:|---:|---:|');
  for (const [name, s] of [['decode (sharp)', decode], ['backbone (onnxruntime)', extract], [nearest ? 'flow + latents (native)' : 'flow (native)', flow],
    [nearest ? `bank search (${searchPrecision}) + maps (native)` : 'anomaly maps (native)', maps]] as const) {
    console.log(`| ${name} | ${s.toFixed(2)} | ${rate(s)} | ${(100 * s / sequential).toFixed(1)}% |`);
  }
  if (fp32Maps !== null) console.log(`| (bank search (fp32) + maps, the baseline; not in the totals) | ${fp32Maps.toFixed(2)} | ${rate(fp32Maps)} | |`);
  console.log(`| stages one after another (baseline) | ${sequential.toFixed(2)} | ${rate(sequential)} | |`);
  console.log(`| pipelined scoring (scoreImages) | ${pipelined.toFixed(2)} | ${rate(pipelined)} | |`);
  console.log(`pipelined / sequential: ${(sequential / pipelined).toFixed(2)}x; slowest stage alone: ${rate(Math.max(decode, extract, flow, maps))}; ` +
    `scored ${scored} images`);
  if (fp32Maps !== null) console.log(`bank search + maps, bf16 / fp32 products: ${(fp32Maps / maps).toFixed(2)}x as fast`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
