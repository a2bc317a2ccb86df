// What the channel reduction buys in speed: vectors/s of one level's flow (score and training step,
// the paper's K = 12, P = 256, M = 10, two classes) at ResNet-50's full tap widths and at reduced
// widths, plus the cost of the reduction itself (standardise + project, native), all in one run so the
// ratios hold on a shared machine.
//
//   node dist/benchmarks/reduction.js [--seconds 3] [--threads N] [--widths 1024,512,256,128,64]
import * as os from 'node:os';
import { parseArgs } from 'node:util';

import { HgadModel } from '../lib/model';
import { featureOps } from '../lib/native-ops';

async function rate(seconds: number, vectors: number, f: () => Promise<unknown>): Promise<number> {
  await f();
  let n = 0;
  const start = process.hrtime.bigint();
  while (Number(process.hrtime.bigint() - start) / 1e9 < seconds) {
    await f();
    n += vectors;
  }
  return n / (Number(process.hrtime.bigint() - start) / 1e9);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: {
    seconds: { type: 'string', default: '3' }, threads: { type: 'string', default: String(os.availableParallelism()) },
    widths: { type: 'string', default: '1024,512,256,128,64' },
  } });
  const seconds = Number(values.seconds), threads = Number(values.threads);
  const widths = values.widths!.split(',').map(Number);
  const batch = 4, h = 16, w = 16, vectors = batch * h * w;
  let seed = 1;
  const random = (n: number): Float32Array => Float32Array.from({ length: n }, () => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return seed / 2 ** 32 - 0.5;
  });
  const labels = Int32Array.from({ length: batch }, (_, i) => i % 2);
  console.log(`reduction speed — ${vectors} vectors per call, ${threads} threads, ${os.cpus()[0]?.model ?? 'cpu'}`);
  console.log('| flow width | score vectors/s | train vectors/s | score vs widest | train vs widest |');
  console.log('|---:|---:|---:|---:|---:|');
  let widest: [number, number] | null = null;
  for (const C of widths) {
    const model = HgadModel.create({ levels: [{ channels: C }], classes: ['a', 'b'], threads });
    const x = { data: random(vectors * C), batch, height: h, width: w, channels: C };
    const score = await rate(seconds, vectors, () => model.score(0, x, labels));
    const trainRate = await rate(seconds, vectors, () => model.trainStep(0, x, labels, { phase: 2, lr: 1e-5 }));
    widest ??= [score, trainRate];
    console.log(`| ${C} | ${score.toFixed(0)} | ${trainRate.toFixed(0)} | ${(score / widest[0]).toFixed(2)}x | ${(trainRate / widest[1]).toFixed(2)}x |`);
  }
  const C = widths[0]!, K = widths[widths.length - 1]!;
  const x = random(vectors * C);
  const weight = await featureOps().orthonormalRows(0, K, C);
  const project = await rate(seconds, vectors, () => featureOps().projectChannels(x, vectors, C, new Float32Array(C), new Float32Array(C).fill(1), weight, K));
  console.log(`reduction ${C} -> ${K} (standardise + project): ${project.toFixed(0)} vectors/s`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
