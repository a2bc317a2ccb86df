// Independent references computed by /usr/bin/python3 (torch, scipy, sklearn where installed): a small
// snippet reads JSON on stdin and prints JSON. Tests that need a module skip, saying why, without it.
import { spawnSync } from 'child_process';

const PYTHON = '/usr/bin/python3';

/** Whether every module imports; otherwise logs why the dependent test is skipped. */
export function pythonHas(modules: string[], purpose: string): boolean {
  const r = spawnSync(PYTHON, ['-c', modules.map((m) => `import ${m}`).join('; ')], { encoding: 'utf8' });
  if (r.status === 0) return true;
  // eslint-disable-next-line no-console
  console.log(`Skipping ${purpose}: ${PYTHON} cannot import ${modules.join(', ')}` +
    `${r.error ? ` (${r.error.message})` : `: ${(r.stderr ?? '').trim().split('\n').pop()}`}`);
  return false;
}

export function runPython<T>(code: string, input: unknown): T {
  const r = spawnSync(PYTHON, ['-c', code], { input: JSON.stringify(input), encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`python failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}
