// HGAD_ADDON (lib/native.ts): a named binary is loaded as it is, or the load fails with a typed error
// naming the variable. The sanitizer stage (scripts/sanitize.sh) depends on it to run these tests over
// build-asan/: with HGAD_ADDON set, the binary in this process must be that one.
import { mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

type NativeModule = typeof import('../lib/native');
type ErrorsModule = typeof import('../lib/errors');

/** lib/native.ts loaded afresh (its addon cache empty) with HGAD_ADDON set to `file` while it loads,
 * and the error classes of that same module registry. */
function isolated(file: string): { load: () => ReturnType<NativeModule['native']>; errors: ErrorsModule } {
  let mod: NativeModule | undefined;
  let errors: ErrorsModule | undefined;
  jest.isolateModules(() => {
    mod = jest.requireActual<NativeModule>('../lib/native');
    errors = jest.requireActual<ErrorsModule>('../lib/errors');
  });
  return {
    errors: errors!,
    load: () => {
      const before = process.env.HGAD_ADDON;
      process.env.HGAD_ADDON = file;
      try {
        return mod!.native();
      } finally {
        if (before === undefined) delete process.env.HGAD_ADDON;
        else process.env.HGAD_ADDON = before;
      }
    },
  };
}

function loadWith(file: string): ReturnType<NativeModule['native']> {
  return isolated(file).load();
}

/** The typed error a load with HGAD_ADDON=file throws, checked to be the isolated registry's HgadError. */
function loadError(file: string): Error & { code: string; parameter?: string } {
  const { load, errors } = isolated(file);
  try {
    load();
  } catch (e) {
    expect(e).toBeInstanceOf(errors.HgadError);
    return e as Error & { code: string; parameter?: string };
  }
  throw new Error(`loading HGAD_ADDON=${file} did not fail`);
}

/** The binary this process uses: HGAD_ADDON when the run sets it, else the package's own build. */
function currentBinary(): string {
  const named = process.env.HGAD_ADDON;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return named ? resolve(named) : (require('node-gyp-build') as { resolve(dir: string): string }).resolve(resolve(__dirname, '..'));
}

test('HGAD_ADDON naming a missing file is a typed error naming the variable', () => {
  const missing = join(tmpdir(), 'hgad-no-such-dir', 'hgad.node');
  const e = loadError(missing);
  expect(e).toMatchObject({ code: 'NATIVE', parameter: 'HGAD_ADDON' });
  expect(e.message).toContain(missing);
});

test('HGAD_ADDON naming a file that is no addon is a typed error with the loader\'s reason', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hgad-loader-'));
  try {
    const bogus = join(dir, 'hgad.node');
    writeFileSync(bogus, 'not an ELF file');
    const e = loadError(bogus);
    expect(e).toMatchObject({ code: 'NATIVE', parameter: 'HGAD_ADDON' });
    expect(e.message).toMatch(/could not be loaded: .*(ELF|header|short)/i);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('HGAD_ADDON loads the binary it names, and that binary is the one mapped into the process', () => {
  const file = currentBinary();
  const addon = loadWith(file);
  expect(addon.abiVersion).toBe(1);
  if (process.platform === 'linux') {
    const maps = readFileSync('/proc/self/maps', 'utf8');
    expect(maps).toContain(realpathSync(file));
  }
});

test('measureSgemm (the benchmarks\' GEMM probe) measures a positive, finite rate', () => {
  const rate = loadWith(currentBinary()).measureSgemm(32, 48, 16, 1, 0.01);
  expect(Number.isFinite(rate)).toBe(true);
  expect(rate).toBeGreaterThan(0);
});
