// npm run fuzz -- [--target NAME|PATH]... [--seed N] [--count N] [--start N] [--timeout MS] [--memory MB]
// Runs seeded fuzz campaigns (test/fuzz/harness.ts) and exits non-zero when any case crashed, hung, ran
// out of memory or threw an untyped error. NAME is a file test/fuzz/NAME.target.ts; without --target
// every such file except the harness's self-test runs. Defaults: seed = the current time (printed, so
// a failure can be rerun), count 5000 per target.
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { formatReport, runFuzz } from './harness';

function main(): Promise<number> | number {
  const args = process.argv.slice(2);
  const targets: string[] = [];
  let seed = Date.now() % 2 ** 31;
  let count = 5000;
  let start = 0;
  let timeout = 10_000;
  let memory = 2048;
  const num = (i: number, name: string): number => {
    const v = Number(args[i]);
    if (!Number.isSafeInteger(v) || v < 0) throw new Error(`${name} needs a non-negative integer, got ${args[i]}`);
    return v;
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--target') targets.push(args[++i] ?? '');
    else if (a === '--seed') seed = num(++i, a);
    else if (a === '--count') count = num(++i, a);
    else if (a === '--start') start = num(++i, a);
    else if (a === '--timeout') timeout = num(++i, a);
    else if (a === '--memory') memory = num(++i, a);
    else if (a === '--help' || a === '-h') {
      console.log('npm run fuzz -- [--target NAME|PATH]... [--seed N] [--count N] [--start N] [--timeout MS] [--memory MB]');
      return 0;
    } else throw new Error(`unknown argument ${a} (see --help)`);
  }
  if (targets.length === 0) {
    for (const f of readdirSync(__dirname).sort()) {
      if (f.endsWith('.target.ts') && f !== 'selftest.target.ts') targets.push(join(__dirname, f));
    }
  }
  const paths = targets.map((t) => (existsSync(join(__dirname, `${t}.target.ts`)) ? join(__dirname, `${t}.target.ts`) : resolve(t)));
  return (async () => {
    let failed = 0;
    for (const target of paths) {
      let done = 0;
      const report = await runFuzz({
        target, seed, count, start, caseTimeoutMs: timeout, memoryLimitMb: memory,
        onCase: () => {
          done += 1;
          if (process.stderr.isTTY && done % 50 === 0) process.stderr.write(`\r${done}/${count}`);
        },
      });
      if (process.stderr.isTTY) process.stderr.write('\r');
      console.log(formatReport(report, 20));
      failed += report.failures.length;
    }
    return failed === 0 ? 0 : 1;
  })();
}

Promise.resolve()
  .then(main)
  .then((code) => { process.exitCode = code; })
  .catch((e: unknown) => {
    console.error((e as Error).message ?? e);
    process.exitCode = 2;
  });
