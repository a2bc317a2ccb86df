// Resource limits: configs the machine cannot hold are refused with a typed error naming the setting
// before anything is allocated (HgadModel.create, model files, the addon itself); an allocation that
// fails anyway is a typed error, never std::terminate; a model file is checked against its config
// before the model is built, and built off the JS thread; files that are not regular files, or whose
// header length is absurd, are refused before their contents are read. Each case runs in a child
// process, so an abort or a runaway read shows as such instead of taking the test runner down.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { runSnippet } from './child-process';

/** Runs the snippet, which prints one JSON line of results; returns it after checking the child's exit. */
async function results(source: string, options: Parameters<typeof runSnippet>[1] = {}): Promise<Record<string, unknown>> {
  const r = await runSnippet(`
const out = {};
const errorOf = async (f) => { try { await f(); return { ok: true }; } catch (e) { return { name: e.name, code: e.code, parameter: e.parameter, message: e.message }; } };
(async () => {
${source}
})().then(() => console.log(JSON.stringify(out)), (e) => { console.error(e); process.exit(3); });
`, options);
  if (r.code !== 0) console.log(r.stdout, r.stderr);
  expect({ code: r.code, signal: r.signal }).toEqual({ code: 0, signal: null });
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hgad-limits-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('HgadModel.create refuses configs that do not fit in memory, naming the setting, before allocating', async () => {
  const out = await results(`
const { HgadModel } = require(LIB);
const base = { levels: [{ channels: 8 }], classes: ['a', 'b'], threads: 1, device: 'cpu' };
out.channels = await errorOf(() => HgadModel.create({ ...base, levels: [{ channels: 8 }, { channels: 65536 }] }));
out.pos = await errorOf(() => HgadModel.create({ ...base, posEmbedDim: 65536 }));
out.layers = await errorOf(() => HgadModel.create({ ...base, levels: [{ channels: 4096 }], couplingLayers: 1000 }));
out.small = await errorOf(() => HgadModel.create(base));
`);
  expect(out.channels).toMatchObject({ name: 'HgadArgumentError', code: 'INVALID_ARGUMENT', parameter: 'config.levels[1].channels' });
  expect((out.channels as { message: string }).message).toMatch(/needs about .* GiB of memory, above the limit/);
  expect(out.pos).toMatchObject({ code: 'INVALID_ARGUMENT', parameter: 'config.posEmbedDim' });
  expect(out.layers).toMatchObject({ code: 'INVALID_ARGUMENT' });
  expect(out.small).toEqual({ ok: true });
});

test('the addon refuses such configs itself, and an allocation failure is a typed error, not an abort', async () => {
  // Direct use of the addon (no TypeScript checks): its own limit is the machine's physical memory.
  const direct = await results(`
const { native } = require(LIB + '/native');
const cfg = { channels: [65536], classes: 2, centres: 2, blocks: 12, posDim: 256, clamp: 1.9, seed: 0, threads: 1, device: 'cpu' };
out.ctor = await errorOf(() => new (native().NativeModel)(cfg));
out.build = await errorOf(() => native().NativeModel.build(cfg));
out.pos = await errorOf(() => new (native().NativeModel)({ ...cfg, channels: [8], posDim: 65536 }));
`);
  expect(direct.ctor).toMatchObject({ code: 'INVALID_ARGUMENT', parameter: 'config' });
  expect(direct.build).toMatchObject({ code: 'INVALID_ARGUMENT', parameter: 'config' });
  expect(direct.pos).toMatchObject({ code: 'INVALID_ARGUMENT', parameter: 'config' });
  // Under a 3 GB address-space limit a 7.7 GB model passes both checks (they look at the machine)
  // and its allocation fails: std::bad_alloc must come back as an error with a code.
  const limited = await results(`
const { HgadModel } = require(LIB);
const { native } = require(LIB + '/native');
out.create = await errorOf(() => HgadModel.create({ levels: [{ channels: 2048 }], classes: ['a', 'b'], centersPerClass: 2, couplingLayers: 40, posEmbedDim: 64, threads: 1, device: 'cpu' }));
out.build = await errorOf(() => native().NativeModel.build({ channels: [2048], classes: 2, centres: 2, blocks: 40, posDim: 64, clamp: 1.9, seed: 0, threads: 1, device: 'cpu' }));
`, { shellPrefix: 'ulimit -v 3000000;' });
  expect(limited.create).toMatchObject({ code: 'NATIVE', message: expect.stringMatching(/out of memory/) });
  expect(limited.build).toMatchObject({ code: 'NATIVE', message: expect.stringMatching(/out of memory/) });
});

test('a small model file whose config asks for a huge or mismatched model is refused before the model is built', async () => {
  const out = await results(`
const { HgadModel } = require(LIB);
const fs = require('node:fs');
const path = require('node:path');
const dir = ${JSON.stringify(dir)};
const model = HgadModel.create({ levels: [{ channels: 8 }], classes: ['a', 'b'], couplingLayers: 2, posEmbedDim: 8, threads: 1, device: 'cpu' });
const good = path.join(dir, 'good.hgad');
await model.save(good);
const bytes = fs.readFileSync(good);
const n = Number(bytes.readBigUInt64LE(0));
const header = JSON.parse(bytes.subarray(8, 8 + n).toString());
function withConfig(name, edit) {
  const h = JSON.parse(JSON.stringify(header));
  const c = JSON.parse(h.__metadata__.config);
  edit(c);
  h.__metadata__.config = JSON.stringify(c);
  const json = Buffer.from(JSON.stringify(h));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const file = path.join(dir, name);
  fs.writeFileSync(file, Buffer.concat([len, json, bytes.subarray(8 + n)]));
  return file;
}
// The event loop must keep turning while a load is refused (it stalled for 24 s at channels 1024).
let last = Date.now(), worst = 0;
const tick = setInterval(() => { const now = Date.now(); worst = Math.max(worst, now - last); last = now; }, 10);
out.pos = await errorOf(() => HgadModel.load(withConfig('pos.hgad', (c) => { c.posEmbedDim = 65536; })));
out.channels = await errorOf(() => HgadModel.load(withConfig('channels.hgad', (c) => { c.levels[0].channels = 65536; })));
out.c1024 = await errorOf(() => HgadModel.load(withConfig('c1024.hgad', (c) => { c.levels[0].channels = 1024; })));
out.c4096 = await errorOf(() => HgadModel.load(withConfig('c4096.hgad', (c) => { c.levels[0].channels = 4096; })));
clearInterval(tick);
out.worstGapMs = worst;
out.size = bytes.length;
`);
  expect(out.pos).toMatchObject({ code: 'MODEL_FILE', message: expect.stringMatching(/config\.posEmbedDim/) });
  expect(out.channels).toMatchObject({ code: 'MODEL_FILE', message: expect.stringMatching(/config\.levels\[0\]\.channels/) });
  expect(out.c1024).toMatchObject({ code: 'MODEL_FILE', message: expect.stringMatching(/has shape .* expected/) });
  expect(out.c4096).toMatchObject({ code: 'MODEL_FILE', message: expect.stringMatching(/has shape .* expected/) });
  expect(out.worstGapMs).toBeLessThan(2000);
});

test('devices, FIFOs and absurd header lengths are refused before their contents are read', async () => {
  const fifo = join(dir, 'model.fifo');
  execFileSync('mkfifo', [fifo]);
  const huge = join(dir, 'huge-header.hgad');
  const head = Buffer.alloc(64);
  head.writeBigUInt64LE(50_000_000n); // within the 100 MB limit, but past the end of this 64-byte file
  await writeFile(huge, head);
  // A 4 GB address-space limit: reading /dev/zero to its end would hit it within seconds.
  const out = await results(`
const { HgadModel } = require(LIB);
out.zero = await errorOf(() => HgadModel.load('/dev/zero'));
out.fifo = await errorOf(() => HgadModel.load(${JSON.stringify(fifo)}));
out.huge = await errorOf(() => HgadModel.load(${JSON.stringify(huge)}));
`, { shellPrefix: 'ulimit -v 4000000;', timeoutMs: 60_000 });
  expect(out.zero).toMatchObject({ code: 'MODEL_FILE', message: expect.stringMatching(/\/dev\/zero: is a device, not a regular file/) });
  expect(out.fifo).toMatchObject({ code: 'MODEL_FILE', message: expect.stringMatching(/is a FIFO, not a regular file/) });
  expect(out.huge).toMatchObject({ code: 'MODEL_FILE', message: expect.stringMatching(/header length 50000000 runs past the end of the 64-byte file/) });
});
