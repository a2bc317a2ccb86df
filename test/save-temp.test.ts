// Atomic saves leave nothing behind: a save killed mid-write (SIGKILL) leaves the target untouched
// and its temporary file `<target>.hgad-tmp-<host>-<pid>-<random>`, which the next save or load of
// that target removes once its process is gone; temporary files of live processes stay.
import { spawn } from 'node:child_process';
import { watch } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { HgadModel } from '../lib';
import { removeStaleTemps, tempPath } from '../lib/io/safetensors';

const ROOT = resolve(__dirname, '..');
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hgad-save-temp-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const small = { levels: [{ channels: 4 }], classes: ['a', 'b'], couplingLayers: 1, posEmbedDim: 4, threads: 1, device: 'cpu' as const };

/** Starts a child that saves a ~40 MB model to `target` over and over; kills it once a temporary file appears. */
async function killMidSave(target: string): Promise<number> {
  const script = `
require(${JSON.stringify(join(ROOT, 'test', 'fuzz', 'register.js'))});
const { HgadModel } = require(${JSON.stringify(join(ROOT, 'lib'))});
const model = HgadModel.create({ levels: [{ channels: 384 }], classes: ['a', 'b'], couplingLayers: 12, posEmbedDim: 128, threads: 1, device: 'cpu' });
(async () => { process.send('ready'); for (;;) await model.save(${JSON.stringify(target)}); })();
`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  await new Promise<void>((r) => child.once('message', () => r()));
  const watcher = watch(dir, (_event, name) => {
    if (name && String(name).includes('.hgad-tmp-')) child.kill('SIGKILL');
  });
  const signal = await new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_code, s) => r(s)));
  watcher.close();
  expect(signal).toBe('SIGKILL');
  return child.pid!;
}

test('a save killed mid-write leaves a temporary file that the next load or save of the target removes', async () => {
  const target = join(dir, 'model.hgad');
  const pid = await killMidSave(target);
  const left = (await readdir(dir)).filter((f) => f.startsWith('model.hgad.hgad-tmp-'));
  expect(left).toHaveLength(1);
  expect(left[0]).toMatch(new RegExp(`^model\\.hgad\\.hgad-tmp-[0-9a-f]{8}-${pid}-[0-9a-f]{12}$`));
  // Not touched: a temporary file of this (live) process, files of other targets, a legacy
  // temporary file of the dead process (removed too).
  const live = tempPath(target);
  await writeFile(live, 'in flight');
  await writeFile(join(dir, `other.hgad.hgad-tmp-00000000-${pid}-aaaaaaaaaaaa`), 'x');
  await writeFile(join(dir, `model.hgad.tmp-${pid}-bbbbbbbbbbbb`), 'legacy');
  // The target holds the last complete save (or nothing, if the kill came during the first).
  const before = await readdir(dir);
  if (before.includes('model.hgad')) await HgadModel.load(target, { device: 'cpu' });
  else await HgadModel.create(small).save(target);
  const after = (await readdir(dir)).sort();
  expect(after).toEqual([
    'model.hgad', live.slice(dir.length + 1), `other.hgad.hgad-tmp-00000000-${pid}-aaaaaaaaaaaa`,
  ].sort());
  expect(await removeStaleTemps(target)).toEqual([]);
}, 120_000);

test('a save that fails removes its temporary file (target a directory)', async () => {
  const target = join(dir, 'is-a-dir');
  await rm(target, { recursive: true, force: true });
  await import('node:fs/promises').then((f) => f.mkdir(target));
  await expect(HgadModel.create(small).save(target)).rejects.toMatchObject({ code: 'IO' });
  expect((await readdir(dir)).filter((f) => f.startsWith('is-a-dir.'))).toEqual([]);
});
