// Spreads the service's heavier synchronous steps (base64-encoding heatmaps into the answer) over loop
// turns: a batch finishes many requests at once, and building all their answers in the turn it
// resolves would hold the event loop for their sum. Each step queued here runs in a turn of its own,
// in order (an immediate queued while immediates run waits for the next turn).
let tail: Promise<unknown> = Promise.resolve();

export function inOwnTurn<T>(step: () => T | Promise<T>): Promise<T> {
  const run = tail.then(() => new Promise<void>((resolve) => setImmediate(resolve))).then(step);
  tail = run.catch(() => undefined);
  return run;
}
