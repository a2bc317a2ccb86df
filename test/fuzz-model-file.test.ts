// Fuzzing of model files (test/fuzz/model-file.target.ts) in child processes (test/fuzz/harness.ts):
// seeded mutations of real files through HgadModel.load (and score / trainStep / save / load when one
// loads). No case may crash the process, hang, or fail with anything but a typed HgadError. A longer
// campaign: npm run fuzz -- --target model-file --count 50000 [--seed N].
import { join } from 'node:path';
import { formatReport, runFuzz } from './fuzz/harness';

const CASES = Number(process.env.HGAD_FUZZ_CASES ?? 2500);
const SEED = Number(process.env.HGAD_FUZZ_SEED ?? 20261130);

test(`${CASES} mutated model files: zero crashes, hangs and untyped errors`, async () => {
  const report = await runFuzz({ target: join(__dirname, 'fuzz', 'model-file.target.ts'), seed: SEED, count: CASES });
  console.log(formatReport(report, 20));
  expect(report.failures).toEqual([]);
  expect(report.counts.accepted + report.counts.typed).toBe(CASES);
  // The campaign reaches both sides: files that load and files that are refused.
  expect(report.counts.accepted).toBeGreaterThan(CASES / 50);
  expect(report.counts.typed).toBeGreaterThan(CASES / 2);
}, 600_000);
