// Overlapping pipeline stages: each item's work starts as soon as the item arrives, one item ahead of
// what the consumer is busy with (the decoder, with its own prefetch, runs ahead of that).

/**
 * Yields start(item) results in order; start(k+1) runs while the consumer handles result k. With
 * `finishOnError`, a source that throws still hands out the result already started before the error.
 */
export async function* oneAhead<A, B>(source: AsyncIterable<A>, start: (item: A) => Promise<B>,
  finishOnError = false): AsyncGenerator<B> {
  let previous: Promise<B> | null = null;
  try {
    for await (const item of source) {
      const current = start(item);
      current.catch(() => undefined); // awaited below; avoids an unhandled rejection while the previous one settles
      if (previous) yield await previous;
      previous = current;
    }
  } catch (e) {
    if (finishOnError && previous) {
      const last = previous;
      previous = null;
      yield await last;
    }
    throw e;
  }
  if (previous) yield await previous;
}
