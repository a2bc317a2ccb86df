// The thread an onnxruntime session lives on. onnxruntime-node's session.run is synchronous under its
// promise (it runs inside a setImmediate on the calling thread), so on the main thread every backbone
// pass would stall the event loop for its whole duration; here it stalls only this thread. Runs are
// handled one at a time, in the order they arrive (see session-thread.ts for the other side).
import { parentPort, workerData } from 'node:worker_threads';

import * as ort from 'onnxruntime-node';

import type { SessionInit, ThreadReply, ThreadRequest, WireTensor } from './session-thread';

const port = parentPort;
if (!port) throw new Error('session-worker.ts runs as a worker thread (see session-thread.ts)');

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function wire(t: ort.Tensor): WireTensor {
  return { type: t.type, data: t.data as WireTensor['data'], dims: [...t.dims] };
}

function reply(r: ThreadReply): void {
  // Hand the output buffers over instead of copying them; an ArrayBuffer onnxruntime does not let go
  // of (not detachable) is copied instead.
  const buffers = r.kind === 'result' ? Object.values(r.outputs).map((t) => t.data.buffer as ArrayBuffer) : [];
  try {
    port!.postMessage(r, buffers);
  } catch {
    port!.postMessage(r);
  }
}

async function main(): Promise<void> {
  const init = workerData as SessionInit;
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(init.model, init.options);
  } catch (e) {
    reply({ kind: 'failed', message: message(e) });
    return;
  }
  let queue = Promise.resolve();
  port!.on('message', (request: ThreadRequest) => {
    queue = queue.then(async () => {
      if (request.kind === 'release') {
        await session.release().catch(() => undefined);
        reply({ kind: 'released', id: request.id });
        port!.close();
        return;
      }
      try {
        const feeds: Record<string, ort.Tensor> = {};
        for (const [name, t] of Object.entries(request.feeds)) feeds[name] = new ort.Tensor(t.type as 'uint8', t.data as Uint8Array, t.dims);
        const results = await session.run(feeds, request.outputs);
        const outputs: Record<string, WireTensor> = {};
        for (const name of request.outputs) outputs[name] = wire(results[name] as ort.Tensor);
        reply({ kind: 'result', id: request.id, outputs });
      } catch (e) {
        reply({ kind: 'error', id: request.id, message: message(e) });
      }
    });
  });
  reply({ kind: 'ready' });
}

void main();
