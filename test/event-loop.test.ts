// The event loop stays free while scoring at full speed: the backbone runs on its own thread, sharp and
// the native core on libuv's pool. Target (issue 12): delay p99 <= 10 ms and max <= 50 ms, measured
// with monitorEventLoopDelay and, on a shared machine, less the time the main thread only waited for
// a CPU (see loop-probe.ts). The control
// runs the same backbone the way onnxruntime-node does by itself (session.run on the main thread) and
// must show the stall, so the measurement can tell the two apart.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import * as ort from 'onnxruntime-node';

import { openDataset } from '../lib/data';
import { generateDemoDataset } from '../lib/demo';
import { buildDemoBackbone, DEMO_TAPS } from '../lib/features/demo-backbone';
import { prepareGraph, PIXELS_INPUT } from '../lib/features/graph';
import { IMAGENET_MEAN, IMAGENET_STD } from '../lib/features/presets';
import { OnnxModel } from '../lib/onnx/model';
import type { AnomalyDetector } from '../lib/pipeline/detector';
import { scoreImages } from '../lib/score/scorer';
import { train } from '../lib/train/trainer';
import { describeDelay, measureLoop } from './loop-probe';

let dir: string;
let detector: AnomalyDetector;
let files: string[];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hgad-loop-'));
  await generateDemoDataset({ root: join(dir, 'data'), seed: 4, classes: ['carpet', 'pill'], trainPerClass: 8, testGoodPerClass: 4, testDefectPerClass: 8 });
  const dataset = await openDataset({ root: join(dir, 'data'), layout: 'mvtec' });
  detector = await train({
    data: dataset, backbone: { model: 'demo' }, schedule: { metaEpochs: 1, subEpochs: 1, lr: 1e-3, warmupEpochs: 0, phase1Epochs: 1 },
    batchSize: 4, seed: 3, threads: 2, progressBar: false, flow: { couplingLayers: 2, centersPerClass: 2 }, holdout: 0.25,
  });
  files = dataset.classes.flatMap((c) => dataset.samples('test', c)).map((s) => s.path);
  for await (const r of scoreImages(detector, files.slice(0, 8), { onError: 'throw' })) void r; // warm up
}, 300000);

afterAll(async () => {
  await detector?.dispose();
  await rm(dir, { recursive: true, force: true });
});

test('scoring at full speed keeps event-loop delay p99 <= 10 ms and max <= 50 ms', async () => {
  let n = 0;
  const images = [...files, ...files];
  const t = performance.now();
  const d = await measureLoop(async () => {
    for await (const r of scoreImages(detector, images, { batchSize: 8, onError: 'throw' })) if (r) n += 1;
  });
  const seconds = (performance.now() - t) / 1000;
  console.log(`scoring ${n} images (${(n / seconds).toFixed(1)} img/s): ${describeDelay(d)}`);
  expect(n).toBe(images.length);
  // A machine so loaded that the main thread mostly waits for a CPU cannot tell the process's own
  // stalls from the scheduler's (lock holders get preempted too): say so rather than guess.
  if (d.runQueueShare > 0.8) {
    console.warn(`event-loop figures not asserted: the main thread waited for a CPU ${(100 * d.runQueueShare).toFixed(0)}% of the time`);
    return;
  }
  // What the process holds the loop for: p99 over every turn; the max outside garbage collections,
  // whose wall time a loaded machine stretches (the longest is printed above).
  expect(d.blockedP99).toBeLessThanOrEqual(10);
  expect(d.blockedMaxNoGc).toBeLessThanOrEqual(50);
  // On a machine with CPU to spare, the raw figures a server would see meet the target too.
  if (d.runQueueShare < 0.05) {
    expect(d.p99).toBeLessThanOrEqual(10);
    expect(d.max).toBeLessThanOrEqual(50);
  }
}, 300000);

test('control: the same backbone run by onnxruntime-node on the main thread stalls the loop', async () => {
  const graph = prepareGraph(OnnxModel.decode(buildDemoBackbone()), { taps: [...DEMO_TAPS], mean: IMAGENET_MEAN, std: IMAGENET_STD, resize: false });
  const session = await ort.InferenceSession.create(graph.bytes, { intraOpNumThreads: 2, logSeverityLevel: 3 });
  try {
    const pixels = new Uint8Array(8 * 256 * 256 * 3).fill(100);
    const d = await measureLoop(async () => {
      for (let i = 0; i < 4; i++) await session.run({ [PIXELS_INPUT]: new ort.Tensor('uint8', pixels, [8, 256, 256, 3]) }, graph.outputs);
    });
    console.log(`onnxruntime on the main thread: ${describeDelay(d)}`);
    expect(d.blockedMax).toBeGreaterThan(50);
  } finally {
    await session.release();
  }
}, 300000);
