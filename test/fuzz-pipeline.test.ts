// Seeded fuzzing of the pipeline's inputs, each case in a child process (test/fuzz/harness.ts): mutated
// detector files through AnomalyDetector.load and scoring, mutated PNG / JPEG / BMP files through the
// decoder and scoring. Zero crashes, hangs, out-of-memory kills and untyped errors. A longer run:
// npm run fuzz -- --target detector --target image --count 20000
import { join } from 'node:path';
import { formatReport, runFuzz } from './fuzz/harness';

const SEED = 20261130;

test.each([
  ['detector', 1200],
  ['image', 3000],
])('fuzz target %s: %i cases, every one accepted or a typed error', async (name, count) => {
  const report = await runFuzz({
    target: join(__dirname, 'fuzz', `${name}.target.ts`),
    seed: SEED,
    count,
    caseTimeoutMs: 30_000,
    memoryLimitMb: 2048,
  });
  console.log(formatReport(report));
  expect(report.failures).toEqual([]);
  expect(report.counts.accepted + report.counts.typed).toBe(count);
  // The mutations must reach both sides of the contract.
  expect(report.counts.accepted).toBeGreaterThan(0);
  expect(report.counts.typed).toBeGreaterThan(count / 2);
}, 600_000);
