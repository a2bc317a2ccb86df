// hgad serve: the scoring service over HTTP (lib/serve). SIGTERM / SIGINT stop accepting, finish the
// requests in flight and exit 0.
import { readFile } from 'node:fs/promises';

import { HgadArgumentError, HgadError } from '../errors';
import { AnomalyDetector } from '../pipeline/detector';
import { startServer } from '../serve';
import { SERVE_DEFAULTS } from '../serve/options';
import { choice, int, OptionSpec, parse, required, str } from './args';

export const SERVE_HELP = `Usage: hgad serve --model <model.hgad> [options]

Scores images sent over HTTP: POST /v1/score (one image as the body, Content-Type image/*, or several as
multipart/form-data; query or form options class, threshold, heatmap=png|float32|png,float32; with
"Accept: image/png" one image's heatmap PNG is the answer, its scores in X-Hgad-* headers), GET /v1/model,
/healthz, /readyz, /metrics (Prometheus). Concurrent requests are scored together in batches.

  --model <file>            a calibrated detector written by hgad train (required)
  --host <addr>             interface to listen on (${SERVE_DEFAULTS.host}: this machine only; 0.0.0.0 for all)
  --port <n>                port (${SERVE_DEFAULTS.port}; 0 picks a free one, printed at start)
  --token-file <file>       require "Authorization: Bearer <token>" with the token in this file
                            (/v1/* and /metrics; /healthz and /readyz stay open)
  --batch-size <n>          images per batch (${SERVE_DEFAULTS.batchSize})
  --max-wait-ms <n>         how long a partial batch waits for more images (${SERVE_DEFAULTS.maxWaitMs})
  --batching on|off         merge concurrent requests into batches (on)
  --pipeline-depth <n>      batches scored at once (${SERVE_DEFAULTS.pipelineDepth})
  --max-queue <n>           images waiting before 503 + Retry-After (${SERVE_DEFAULTS.maxQueue})
  --body-limit <bytes>      largest request body (${SERVE_DEFAULTS.bodyLimit})
  --max-images <n>          images per multipart request (${SERVE_DEFAULTS.maxImages})
  --max-pixels <n>          largest image after decoding, in pixels (${SERVE_DEFAULTS.maxPixels})
  --timeout-ms <n>          time limit per request (${SERVE_DEFAULTS.timeoutMs})
  --threads <n>             threads of the flow and the backbone (all cores)
  --log                     log every request (JSON lines on standard output)
`;

const OPTIONS: OptionSpec = {
  model: { type: 'string' }, host: { type: 'string' }, port: { type: 'string' }, 'token-file': { type: 'string' },
  'batch-size': { type: 'string' }, 'max-wait-ms': { type: 'string' }, batching: { type: 'string' }, 'pipeline-depth': { type: 'string' },
  'max-queue': { type: 'string' }, 'body-limit': { type: 'string' }, 'max-images': { type: 'string' }, 'max-pixels': { type: 'string' },
  'timeout-ms': { type: 'string' }, threads: { type: 'string' }, log: { type: 'boolean' },
};

async function readToken(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new HgadError('IO', `Cannot read the token file ${file}: ${(e as Error).message}`, '--token-file');
  }
  const token = text.trim();
  if (token.length < 16 || /\s/.test(token)) {
    throw new HgadArgumentError('--token-file', 'a file holding one token of at least 16 characters without white space', `${token.length} characters`);
  }
  return token;
}

export async function serveCommand(args: string[], version = 'unknown'): Promise<number> {
  const p = parse('serve', args, OPTIONS);
  if (p.values.help) {
    process.stdout.write(SERVE_HELP);
    return 0;
  }
  const modelPath = required(p, 'model', 'the path of a detector written by hgad train');
  const tokenFile = str(p, 'token-file');
  const batching = choice(p, 'batching', ['on', 'off'] as const);
  const threads = int(p, 'threads', 1, 1024);
  const options = {
    host: str(p, 'host'), port: int(p, 'port', 0, 65535), token: tokenFile ? await readToken(tokenFile) : null,
    batchSize: int(p, 'batch-size', 1, 256), maxWaitMs: int(p, 'max-wait-ms', 0, 10_000),
    batching: batching === undefined ? undefined : batching === 'on', pipelineDepth: int(p, 'pipeline-depth', 1, 16),
    maxQueue: int(p, 'max-queue', 1, 1 << 20), bodyLimit: int(p, 'body-limit', 1024, 1 << 30), maxImages: int(p, 'max-images', 1, 4096),
    maxPixels: int(p, 'max-pixels', 1, 1 << 30), timeoutMs: int(p, 'timeout-ms', 100, 3_600_000), log: p.values.log === true, version,
  };
  const detector = await AnomalyDetector.load(modelPath, threads !== undefined ? { threads } : {});
  let server;
  try {
    server = await startServer(detector, options);
  } catch (e) {
    await detector.dispose();
    if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE' || (e as NodeJS.ErrnoException).code === 'EACCES') {
      throw new HgadError('IO', `Cannot listen on ${options.host ?? SERVE_DEFAULTS.host}:${options.port ?? SERVE_DEFAULTS.port}: ${(e as Error).message}`, '--port');
    }
    throw e;
  }
  process.stderr.write(`hgad serve: listening on ${server.url} (classes ${detector.classes.join(', ')}; ` +
    `${options.token ? 'bearer token required' : 'no authentication'})\n`);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  process.stderr.write(`hgad serve: ${signal}: finishing the requests in flight\n`);
  await server.close();
  await detector.dispose();
  process.stderr.write('hgad serve: stopped\n');
  return 0;
}
