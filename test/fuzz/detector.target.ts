// Fuzz target: detector files. Seeded mutations of a real (tiny) detector file - its JSON pipeline
// metadata (fields deleted, types changed, huge / negative / infinite values, long strings, path names,
// unknown keys, damaged JSON text) or its bytes (truncations, flips, length fields) - go through
// AnomalyDetector.load, and a file that loads is scored on a real image. Contract: a typed error, or a
// finite score with a finite map (files with valid but large geometry count by their load alone);
// anything else (a crash, a hang, an untyped error, Infinity or NaN
// scores from a file that loaded) is a failure.
import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { AnomalyDetector } from '../../lib/pipeline/detector';
import { scoreImages } from '../../lib/score/scorer';
import { tinyDetector } from '../tiny-detector';
import type { FuzzContext, FuzzTarget } from './harness';
import { mutateBytes, mutateJson, Rng } from './pipeline-mutations';

interface DetectorCase {
  what: string;
  /** Pipeline metadata text to store with the real flow, or whole file bytes. */
  pipeline?: string;
  bytes?: Buffer;
}

interface Base {
  detector: AnomalyDetector;
  spec: string;
  bytes: Buffer;
  image: string;
}

let base: Base | null = null;

/** The campaign's detector: trained once into workDir by the first child (files appear atomically). */
async function prepare(ctx: FuzzContext): Promise<Base> {
  const file = join(ctx.workDir, 'tiny.hgad');
  if (!existsSync(file)) {
    const made = await tinyDetector(ctx.workDir);
    await made.detector.dispose();
  }
  const detector = await AnomalyDetector.load(file, { threads: 1 });
  const image = join(ctx.workDir, 'data', 'carpet', 'test', 'good', '000.png');
  return { detector, spec: JSON.stringify(detector.spec), bytes: await readFile(file), image };
}

/**
 * The detector file with its pipeline metadata replaced: the safetensors header (u64 LE length, JSON,
 * padded to 8 bytes) rewritten around the same tensor data, without the cost of a save per case.
 */
function withPipeline(file: Buffer, pipeline: string): Buffer {
  const n = Number(file.readBigUInt64LE(0));
  const header = JSON.parse(file.subarray(8, 8 + n).toString('utf8')) as { __metadata__: Record<string, string> };
  header.__metadata__.pipeline = pipeline;
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  if (json.length % 8 !== 0) json = Buffer.concat([json, Buffer.alloc(8 - (json.length % 8), 0x20)]);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, json, file.subarray(8 + n)]);
}

/** Text-level damage JSON.parse may or may not survive: 1e999 parses as Infinity. */
function mutateText(rng: Rng, text: string): { what: string; text: string } {
  const numbers = [...text.matchAll(/-?\d+(\.\d+)?(e[-+]?\d+)?/gi)];
  switch (rng.int(4)) {
    case 0: {
      if (numbers.length === 0) break;
      const m = rng.pick(numbers);
      const v = rng.pick(['1e999', '-1e999', 'NaN', '1e-999', '-0', '00', '1.', '0x10']);
      return { what: `number at ${m.index} -> ${v}`, text: text.slice(0, m.index) + v + text.slice(m.index! + m[0].length) };
    }
    case 1: {
      const at = rng.int(text.length);
      return { what: `text truncated at ${at}`, text: text.slice(0, at) };
    }
    case 2: {
      const at = rng.int(text.length);
      const junk = rng.pick(['"', '{', '}', ',', '\\', '\u0000', '\ud800', '[', ']', ':']);
      return { what: `${JSON.stringify(junk)} inserted at ${at}`, text: text.slice(0, at) + junk + text.slice(at) };
    }
    default:
      break;
  }
  return { what: 'spec replaced by a JSON scalar', text: rng.pick(['null', '1', '"x"', '[]', 'true', '{}']) };
}

export const target: FuzzTarget<DetectorCase> = {
  async setup(ctx) {
    base = await prepare(ctx);
  },

  generate(seed, index, ctx) {
    const b = base!;
    const rng = new Rng(seed, index, 'detector');
    const r = rng.float();
    if (r < 0.7) {
      const spec = JSON.parse(b.spec) as Record<string, unknown>;
      const edits = 1 + rng.int(3);
      const what: string[] = [];
      for (let i = 0; i < edits; i++) what.push(mutateJson(rng, spec, ctx.workDir));
      return { what: `json: ${what.join('; ')}`, pipeline: JSON.stringify(spec) };
    }
    if (r < 0.8) {
      const m = mutateText(rng, b.spec);
      return { what: `text: ${m.what}`, pipeline: m.text };
    }
    const m = mutateBytes(rng, b.bytes);
    return { what: `bytes: ${m.what}`, bytes: m.data };
  },

  describe: (c) => c.what.slice(0, 300),

  async run(c, ctx) {
    const file = join(ctx.workDir, `case-${process.pid}.hgad`);
    await writeFile(file, c.pipeline !== undefined ? withPipeline(base!.bytes, c.pipeline) : c.bytes!);
    const detector = await AnomalyDetector.load(file, { threads: 1 });
    try {
      // Valid but large geometry (an 8192 px input, a 4096 px map with a wide blur) is only slow, not
      // wrong: such files count by their load; scoring them would exceed the case time on 2 cores.
      const s = detector.spec;
      const inputs = (s.backbone.scales ?? [s.backbone.inputSize]).reduce((a, x) => a + x * x, 0);
      if (inputs > 512 * 512 || s.map.size > 512 || s.map.sigma > 64) return;
      for await (const r of scoreImages(detector, [base!.image], { batchSize: 1, concurrency: 1, onError: 'throw' })) {
        if (!Number.isFinite(r.imageScore) || !r.map.every(Number.isFinite)) {
          throw new Error(`a detector file that loaded scored ${r.imageScore} (map finite: ${r.map.every(Number.isFinite)})`);
        }
      }
    } finally {
      await detector.dispose();
      await rm(file, { force: true });
    }
  },

  async teardown() {
    await base?.detector.dispose();
  },
};
