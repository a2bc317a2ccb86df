// Runs a TypeScript snippet in its own node process, so that a test can see a native crash (the
// process killed by a signal) instead of dying with it. `LIB` in the snippet is the project's lib/
// folder (require(LIB) gives the package's exports).
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const ROOT = resolve(__dirname, '..');

export async function runSnippet(source: string, options: { nodeArgs?: string[]; shellPrefix?: string; timeoutMs?: number } = {}): Promise<ChildResult> {
  const dir = await mkdtemp(join(tmpdir(), 'hgad-child-'));
  const file = join(dir, 'snippet.ts');
  await writeFile(file, `const LIB = ${JSON.stringify(join(ROOT, 'lib'))};\n${source}`);
  const args = [...(options.nodeArgs ?? []), '-r', join(ROOT, 'test', 'fuzz', 'register.js'), file];
  try {
    return await new Promise<ChildResult>((done, fail) => {
      // shellPrefix (e.g. `ulimit -v N;`) runs node under bash with that applied first.
      const child = options.shellPrefix
        ? spawn('bash', ['-c', `${options.shellPrefix} exec "$0" "$@"`, process.execPath, ...args], { cwd: ROOT })
        : spawn(process.execPath, args, { cwd: ROOT });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
      child.on('error', fail);
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        done({ code, signal, stdout, stderr });
      });
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
