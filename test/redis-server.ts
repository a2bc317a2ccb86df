// A real redis-server for tests: Debian's binary on 127.0.0.1 at a free port, in a temporary folder,
// with append-only persistence so that a restart keeps every job. Tests stop it themselves (also when
// they fail). Where redis-server is not installed the queue tests skip with a message, except in CI
// (CI=true, or HGAD_REQUIRE_REDIS=1 as .ci/run sets), where that is a failure: .ci/run installs it
// (scripts/install-deps.sh).
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { freePort, stopChild } from '../benchmarks/processes';

export function redisServerPath(): string | null {
  const r = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() !== '' ? r.stdout.trim() : null;
}

/** Whether the queue tests can run here; throws in CI when they cannot. */
export function redisAvailable(): boolean {
  if (redisServerPath() !== null) return true;
  const message = 'redis-server is not installed (apt-get install redis-server, or bash scripts/install-deps.sh): the queue tests need a real Redis';
  if (process.env.CI === 'true' || process.env.CI === '1' || process.env.HGAD_REQUIRE_REDIS === '1') throw new Error(message);
  console.warn(`skipping: ${message}`);
  return false;
}

export class RedisServer {
  private child: ChildProcess | null = null;
  private constructor(readonly dir: string, readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<RedisServer> {
    const dir = await mkdtemp(join(tmpdir(), 'hgad-redis-'));
    const server = new RedisServer(dir, await freePort());
    await server.launch();
    return server;
  }

  /** Starts redis-server (again) on the same port and folder: the append-only file brings the data back. */
  async launch(): Promise<void> {
    const child = spawn(redisServerPath()!, ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--save', '',
      '--appendonly', 'yes', '--appendfsync', 'always', '--maxmemory-policy', 'noeviction', '--protected-mode', 'yes'],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    let out = '';
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
    await new Promise<void>((resolve, reject) => {
      const t = setInterval(() => {
        if (/Ready to accept connections/.test(out)) {
          clearInterval(t);
          resolve();
        } else if (child.exitCode !== null) {
          clearInterval(t);
          reject(new Error(`redis-server exited: ${out}`));
        }
      }, 20);
    });
  }

  /** SIGTERM: Redis flushes its append-only file and exits. */
  async stop(): Promise<void> {
    if (!this.child) return;
    await stopChild(this.child, { killAfterMs: 10_000 });
    this.child = null;
  }

  async restart(downMs = 0): Promise<void> {
    await this.stop();
    if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
    await this.launch();
  }

  /** Stops the server and removes its folder. */
  async dispose(): Promise<void> {
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
  }
}
