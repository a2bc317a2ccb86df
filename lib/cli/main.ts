#!/usr/bin/env node
// The hgad command line: train, score, eval, serve, worker, enqueue, demo.
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

import { HgadError } from '../errors';
import { demoCommand } from './demo';
import { enqueueCommand } from './enqueue';
import { evalCommand } from './eval';
import { scoreCommand } from './score';
import { serveCommand } from './serve';
import { trainCommand } from './train';
import { workerCommand } from './worker';

const HELP = `hgad — unified visual anomaly detection (HGAD, ECCV 2024) for Node.js

Usage: hgad <command> [options]     (hgad <command> --help for its options)

Commands
  demo     run the whole job offline on a generated dataset (start here)
  train    train one detector on the normal images of many classes
  score    score image files or folders; JSON/CSV out, optional heatmaps
  eval     image AUROC, pixel AUROC, AUPRO and F1-max on a dataset's test split
  serve    an HTTP scoring service (POST /v1/score, /metrics, ...) over one detector
  worker   score jobs from a BullMQ queue on Redis (run one per machine to scale out)
  enqueue  submit images to the queue's workers and collect their results in order

Examples
  npx hgad demo --out hgad-demo
  npx hgad train --data ./mvtec --classes bottle,cable --backbone mobilenetv2-int8 --out model.hgad
  npx hgad score --model model.hgad ./incoming --heatmaps ./heatmaps --format csv --out scores.csv
  npx hgad eval --model model.hgad --data ./mvtec --json metrics.json
  npx hgad serve --model model.hgad --port 8080
  npx hgad worker --redis redis://queue-host:6379 --model model.hgad
  npx hgad enqueue --redis redis://queue-host:6379 --model model.hgad ./incoming --out results.jsonl
`;

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  train: trainCommand, score: scoreCommand, eval: evalCommand, demo: demoCommand,
  serve: (args) => serveCommand(args, version()), worker: workerCommand, enqueue: enqueueCommand,
};

function version(): string {
  // dist/lib/cli/ when built, lib/cli/ under ts-jest: the package.json above either.
  for (let dir = __dirname, i = 0; i < 4; i++, dir = path.dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'hgad' && pkg.version) return pkg.version;
    } catch {
      // not here; go up
    }
  }
  return 'unknown';
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(HELP);
    return command === undefined ? 1 : 0;
  }
  if (command === '--version' || command === '-v') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const run = COMMANDS[command];
  if (!run) {
    process.stderr.write(`hgad: unknown command "${command}"; expected one of ${Object.keys(COMMANDS).join(', ')}\n\n${HELP}`);
    return 2;
  }
  try {
    return await run(rest);
  } catch (e) {
    if (e instanceof HgadError) {
      process.stderr.write(`hgad ${command}: ${e.message}${e.parameter ? ` [${e.code} ${e.parameter}]` : ` [${e.code}]`}\n`);
      return e.code === 'INVALID_ARGUMENT' ? 2 : 1;
    }
    throw e;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  }, (e: unknown) => {
    process.stderr.write(`hgad: unexpected error: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exitCode = 1;
  });
}
