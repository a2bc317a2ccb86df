// The command line run in this process (main() of lib/cli/main.ts), what it writes to stdout and
// stderr captured instead of printed, for tests of `hgad ...` that need no child process.
import { main } from '../lib/cli/main';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

export async function hgad(...args: string[]): Promise<CliRun> {
  let stdout = '', stderr = '';
  const out = jest.spyOn(process.stdout, 'write').mockImplementation((s) => { stdout += String(s); return true; });
  const err = jest.spyOn(process.stderr, 'write').mockImplementation((s) => { stderr += String(s); return true; });
  try {
    return { code: await main(args), stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}
