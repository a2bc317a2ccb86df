// A target whose cases behave in every way the harness must classify (test/fuzz-harness.test.ts):
// case index % 7 picks the behaviour.
import { HgadError } from '../../lib/errors';
import type { FuzzTarget } from './harness';

const KINDS = ['accept', 'typed', 'untyped', 'abort', 'segv', 'hang', 'memory'] as const;
type Kind = (typeof KINDS)[number];

const held: Buffer[] = [];

export const target: FuzzTarget<{ kind: Kind; index: number }> = {
  generate: (_seed, index) => ({ kind: KINDS[index % KINDS.length]!, index }),
  describe: (c) => `${c.kind} #${c.index}`,
  async run(c) {
    switch (c.kind) {
      case 'accept': return;
      case 'typed': throw new HgadError('MODEL_FILE', 'a typed rejection');
      case 'untyped': throw new RangeError('an untyped rejection');
      case 'abort': process.abort(); break;
      case 'segv': process.kill(process.pid, 'SIGSEGV'); await new Promise((r) => setTimeout(r, 5000)); break;
      case 'hang': for (;;) { /* a stalled event loop */ } // eslint-disable-line no-constant-condition
      case 'memory':
        for (;;) {
          const b = Buffer.alloc(256 << 20, 1);
          held.push(b);
          await new Promise((r) => setImmediate(r));
        }
    }
  },
};
