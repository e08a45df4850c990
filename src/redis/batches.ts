/**
 * Calls that share a key (a room) and arrive while an earlier batch of that key is in flight run
 * together, as one Redis script: under load a crowd of joins costs a few commands, not one each.
 * At most one batch per key is in flight, so an idle key's first call goes out at once (in the
 * same turn's pipeline, as a lone call would) and, with ioredis' auto-pipelining (one pipeline in
 * flight per connection), batching adds no wait a call would not have had behind it anyway. A batch holds at most `max` calls; a failed batch fails each
 * of its calls with its error.
 */
export class Batches<Item, Result> {
  /** The calls waiting, of each key with a batch in flight or about to start. */
  private readonly waiting = new Map<string, Array<Call<Item, Result>>>();

  /**
   * @param run runs one batch: `items` of `key`, in the order they were added, resolving with
   *   one result for each.
   */
  constructor(
    private readonly run: (key: string, items: Item[]) => Promise<Result[]>,
    private readonly max: number,
  ) {}

  /** Runs `item` in the next batch of `key`; resolves with its result. */
  add(key: string, item: Item): Promise<Result> {
    const { promise, call } = pending<Item, Result>(item);
    const waiting = this.waiting.get(key);
    if (waiting) {
      waiting.push(call);
      return promise;
    }
    const calls = [call];
    this.waiting.set(key, calls);
    // A microtask, not at once: the other calls of this turn join the batch.
    queueMicrotask(() => void this.flush(key, calls));
    return promise;
  }

  /** Runs the waiting calls of `key`, a batch at a time, until none are left. */
  private async flush(key: string, waiting: Array<Call<Item, Result>>): Promise<void> {
    while (waiting.length > 0) {
      const calls = waiting.splice(0, this.max);
      try {
        const results = await this.run(
          key,
          calls.map((call) => call.item),
        );
        for (let i = 0; i < calls.length; i++) calls[i].resolve(results[i]);
      } catch (error) {
        for (const call of calls) call.reject(error);
      }
    }
    this.waiting.delete(key);
  }
}

function pending<Item, Result>(item: Item): { promise: Promise<Result>; call: Call<Item, Result> } {
  let resolve!: (result: Result) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<Result>((ok, fail) => {
    resolve = ok;
    reject = fail;
  });
  return { promise, call: { item, resolve, reject } };
}

interface Call<Item, Result> {
  readonly item: Item;
  resolve(result: Result): void;
  reject(error: unknown): void;
}
