// The fuzz harness itself (test/fuzz/harness.ts): every kind of outcome is classified as such, a dead
// or killed child is replaced and the campaign goes on.
import { join } from 'node:path';
import { formatReport, runFuzz } from './fuzz/harness';

test('classifies accepted, typed, untyped, crash (abort, signal), hang and oom, and keeps going', async () => {
  const report = await runFuzz({
    target: join(__dirname, 'fuzz', 'selftest.target.ts'),
    seed: 1,
    count: 9, // 0..6 once, then accept and typed again after the oom's replacement child
    caseTimeoutMs: 8000,
    memoryLimitMb: 200, // a child starts near 90 MiB; fresh pages arrive slowly on a loaded VM
  });
  console.log(formatReport(report));
  expect(report.counts).toEqual({ accepted: 2, typed: 2, untyped: 1, crash: 2, hang: 1, oom: 1 });
  expect(report.codes).toEqual({ MODEL_FILE: 2 });
  expect(report.failures.map((f) => [f.index, f.outcome, f.description])).toEqual([
    [2, 'untyped', 'untyped #2'],
    [3, 'crash', 'abort #3'],
    [4, 'crash', 'segv #4'],
    [5, 'hang', 'hang #5'],
    [6, 'oom', 'memory #6'],
  ]);
  expect(report.failures[1]!.code).toBe('SIGABRT');
  expect(report.failures[2]!.code).toBe('SIGSEGV');
  expect(report.children).toBe(5); // the first, then one after each crash, the hang and the oom
});
