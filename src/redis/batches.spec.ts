import { Batches } from './batches.js';

/** A batch runner whose runs the test settles by hand, recording what each run was given. */
function runner() {
  const runs: Array<{ key: string; items: number[]; settle(fail?: Error): void }> = [];
  const run = (key: string, items: number[]): Promise<number[]> =>
    new Promise((resolve, reject) => {
      runs.push({
        key,
        items,
        settle: (fail) => (fail ? reject(fail) : resolve(items.map((item) => item * 10))),
      });
    });
  return { runs, run };
}

/** Lets the microtasks (and the promise callbacks they queue) run. */
const settled = () => new Promise((resolve) => setImmediate(resolve));

describe('Batches', () => {
  it('runs the calls of one turn as one batch, in order, each getting its own result', async () => {
    const { runs, run } = runner();
    const batches = new Batches(run, 100);
    const results = Promise.all([1, 2, 3].map((item) => batches.add('r', item)));
    await settled();
    expect(runs.map(({ items }) => items)).toEqual([[1, 2, 3]]);
    runs[0].settle();
    await expect(results).resolves.toEqual([10, 20, 30]);
  });

  it('holds the calls that come while a batch is in flight for the next one', async () => {
    const { runs, run } = runner();
    const batches = new Batches(run, 100);
    const first = batches.add('r', 1);
    await settled();
    const later = [batches.add('r', 2), batches.add('r', 3)];
    await settled();
    expect(runs).toHaveLength(1);
    runs[0].settle();
    await expect(first).resolves.toBe(10);
    await settled();
    expect(runs.map(({ items }) => items)).toEqual([[1], [2, 3]]);
    runs[1].settle();
    await expect(Promise.all(later)).resolves.toEqual([20, 30]);
  });

  it('puts at most `max` calls in a batch', async () => {
    const { runs, run } = runner();
    const batches = new Batches(run, 2);
    const results = Promise.all([1, 2, 3, 4, 5].map((item) => batches.add('r', item)));
    for (let i = 0; i < 3; i++) {
      await settled();
      runs[i].settle();
    }
    await expect(results).resolves.toEqual([10, 20, 30, 40, 50]);
    expect(runs.map(({ items }) => items)).toEqual([[1, 2], [3, 4], [5]]);
  });

  it('fails each call of a failed batch, and still runs the next', async () => {
    const { runs, run } = runner();
    const batches = new Batches(run, 100);
    const failing = [batches.add('r', 1), batches.add('r', 2)];
    await settled();
    const next = batches.add('r', 3);
    runs[0].settle(new Error('Redis away'));
    for (const call of failing) await expect(call).rejects.toThrow('Redis away');
    await settled();
    runs[1].settle();
    await expect(next).resolves.toBe(30);
  });

  it('keeps keys apart: one key’s batch in flight holds no other key back', async () => {
    const { runs, run } = runner();
    const batches = new Batches(run, 100);
    void batches.add('a', 1);
    await settled();
    const other = batches.add('b', 2);
    await settled();
    expect(runs.map(({ key, items }) => [key, items])).toEqual([
      ['a', [1]],
      ['b', [2]],
    ]);
    runs[1].settle();
    await expect(other).resolves.toBe(20);
    runs[0].settle();
  });
});
