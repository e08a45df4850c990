import {
  ChannelFull,
  ChannelLayer,
  ChannelLayerOptions,
  ChannelMessage,
  InvalidChannelLayerInput,
} from '../src/index.js';

/** How a conformance run builds layers and moves time for one implementation. */
export interface ConformanceTarget {
  /** A fresh, empty layer with these options. The suite closes it. */
  create(options?: ChannelLayerOptions): Promise<ChannelLayer> | ChannelLayer;
  /**
   * Makes `seconds` pass for layers made by `create`: a fake clock where the layer takes one,
   * a real wait where expiry is kept by a server.
   */
  advance(seconds: number): Promise<void>;
  /** Expiry values to use, small enough that `advance` stays quick. @default 1 and 2 */
  expiry?: number;
}

/**
 * The ChannelLayer contract as one suite: every implementation runs it unchanged, so they share
 * Channels' semantics rather than resemble them.
 */
export function describeChannelLayerConformance(name: string, target: ConformanceTarget): void {
  describe(`${name} conforms to the ChannelLayer contract`, () => {
    const open: ChannelLayer[] = [];
    const make = async (options?: ChannelLayerOptions): Promise<ChannelLayer> => {
      const layer = await target.create(options);
      open.push(layer);
      return layer;
    };
    const expiry = target.expiry ?? 1;
    let layer: ChannelLayer;

    beforeEach(async () => {
      layer = await make();
    });

    afterEach(async () => {
      await Promise.all(open.splice(0).map((each) => each.close()));
    });

    const msg = (text: string, extra: Record<string, unknown> = {}): ChannelMessage => ({
      type: 'test.message',
      text,
      ...extra,
    });

    describe('send and receive', () => {
      it('receives what was sent', async () => {
        await layer.send('jobs', msg('hello', { n: 1, nested: { a: [1, 2] } }));
        await expect(layer.receive('jobs')).resolves.toEqual(
          msg('hello', { n: 1, nested: { a: [1, 2] } }),
        );
      });

      it('waits for a message sent after receive was called', async () => {
        const pending = layer.receive('later');
        await layer.send('later', msg('late'));
        await expect(pending).resolves.toEqual(msg('late'));
      });

      it('keeps the order of one sender to one channel', async () => {
        for (let i = 0; i < 20; i++) await layer.send('ordered', msg(`m${i}`));
        const got: unknown[] = [];
        for (let i = 0; i < 20; i++) got.push((await layer.receive('ordered')).text);
        expect(got).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));
      });

      it('serves waiting receivers in the order they called', async () => {
        const first = layer.receive('line');
        const second = layer.receive('line');
        await layer.send('line', msg('one'));
        await layer.send('line', msg('two'));
        await expect(first).resolves.toEqual(msg('one'));
        await expect(second).resolves.toEqual(msg('two'));
      });

      it('rejects an aborted receive and leaves the next message for the next receiver', async () => {
        const controller = new AbortController();
        const aborted = layer.receive('abortable', { signal: controller.signal });
        controller.abort(new Error('gave up'));
        await expect(aborted).rejects.toThrow('gave up');
        await layer.send('abortable', msg('kept'));
        await expect(layer.receive('abortable')).resolves.toEqual(msg('kept'));
      });

      it('gives receivers a frozen copy, not the sender object', async () => {
        const original = { type: 'test.message', list: [1] };
        await layer.send('copies', original);
        original.list.push(2);
        const received = await layer.receive('copies');
        expect(received).toEqual({ type: 'test.message', list: [1] });
        expect(Object.isFrozen(received)).toBe(true);
        expect(Object.isFrozen(received.list)).toBe(true);
        expect(Object.isFrozen(original)).toBe(false);
      });
    });

    describe('names and messages', () => {
      it.each(['', 'has space', 'slash/name', 'ünïcode', 'two!bangs!', 'x'.repeat(100)])(
        'refuses channel name %j with a TypeError naming the rule',
        async (bad) => {
          const attempt = layer.send(bad, msg('x'));
          await expect(attempt).rejects.toBeInstanceOf(InvalidChannelLayerInput);
          await expect(layer.send(bad, msg('x'))).rejects.toBeInstanceOf(TypeError);
          await expect(layer.send(bad, msg('x'))).rejects.toThrow(/ASCII letters, digits/);
        },
      );

      it.each(['', 'has space', 'local!part', 'g'.repeat(100)])(
        'refuses group name %j',
        async (bad) => {
          await expect(layer.groupAdd(bad, 'chan')).rejects.toThrow(/invalid group name/);
          await expect(layer.groupSend(bad, msg('x'))).rejects.toBeInstanceOf(TypeError);
        },
      );

      it('accepts names of 99 characters, dots, dashes, underscores and one bang', async () => {
        const long = 'a'.repeat(99);
        await layer.groupAdd(long, long);
        await layer.groupAdd('g-1_2.3', 'specific.A-b_c!x.y-z_1');
        await layer.send('specific.A-b_c!x.y-z_1', msg('ok'));
        await expect(layer.receive('specific.A-b_c!x.y-z_1')).resolves.toEqual(msg('ok'));
      });

      it.each([
        ['no type', { text: 'x' }],
        ['an empty type', { type: '' }],
        ['a leading underscore', { type: '_private' }],
        ['a leading dot', { type: '.hidden' }],
      ])('refuses a message with %s', async (_label, bad) => {
        await expect(layer.send('chan', bad as unknown as ChannelMessage)).rejects.toBeInstanceOf(
          TypeError,
        );
      });

      it('refuses a message that is not a plain object', async () => {
        await expect(layer.send('chan', [] as unknown as ChannelMessage)).rejects.toThrow(
          /plain object/,
        );
        await expect(layer.send('chan', null as unknown as ChannelMessage)).rejects.toThrow(
          /plain object/,
        );
      });

      it('carries a message as JSON: a Date arrives as its ISO string, undefined not at all', async () => {
        const at = new Date(Date.UTC(2026, 10, 28));
        await layer.send('json', { type: 'test.message', at, gone: undefined, n: [1, 'two'] });
        await expect(layer.receive('json')).resolves.toStrictEqual({
          type: 'test.message',
          at: '2026-11-28T00:00:00.000Z',
          n: [1, 'two'],
        });
      });

      it('refuses a message that is not JSON data, before sending anything', async () => {
        const cyclic: Record<string, unknown> = { type: 'test.message' };
        cyclic.self = cyclic;
        await layer.groupAdd('json-group', 'json-member');
        for (const bad of [cyclic, { type: 'test.message', big: 1n }]) {
          const message = bad as ChannelMessage;
          await expect(layer.send('json', message)).rejects.toThrow(/only JSON data/);
          await expect(layer.groupSend('json-group', message)).rejects.toThrow(/only JSON data/);
        }
        await layer.send('json-member', msg('after'));
        await expect(layer.receive('json-member')).resolves.toEqual(msg('after'));
      });

      it('makes unique process-local channel names with the prefix', async () => {
        const a = await layer.newChannel('chat');
        const b = await layer.newChannel('chat');
        expect(a).not.toBe(b);
        expect(a).toMatch(/^chat\.[A-Za-z0-9\-_.]+![A-Za-z0-9\-_.]+$/);
        expect(await layer.newChannel()).toMatch(/^specific\./);
        await layer.send(a, msg('to a'));
        await expect(layer.receive(a)).resolves.toEqual(msg('to a'));
      });
    });

    describe('capacity', () => {
      it('throws ChannelFull when a channel holds capacity unread messages', async () => {
        const small = await make({ capacity: 3 });
        for (let i = 0; i < 3; i++) await small.send('tight', msg(`m${i}`));
        await expect(small.send('tight', msg('m3'))).rejects.toBeInstanceOf(ChannelFull);
        await small.receive('tight');
        await expect(small.send('tight', msg('m3'))).resolves.toBeUndefined();
      });

      it('applies per-pattern capacities, first match wins', async () => {
        const tuned = await make({ capacity: 5, channelCapacity: { 'small.*': 1, 'sm*': 3 } });
        await tuned.send('small.one', msg('a'));
        await expect(tuned.send('small.one', msg('b'))).rejects.toBeInstanceOf(ChannelFull);
        for (let i = 0; i < 3; i++) await tuned.send('smaller', msg(`m${i}`));
        await expect(tuned.send('smaller', msg('x'))).rejects.toBeInstanceOf(ChannelFull);
        for (let i = 0; i < 5; i++) await tuned.send('other', msg(`m${i}`));
        await expect(tuned.send('other', msg('x'))).rejects.toBeInstanceOf(ChannelFull);
      });

      it('counts process-local channels on their part up to the bang', async () => {
        const tuned = await make({ capacity: 10, channelCapacity: { 'proc.a!': 2 } });
        await tuned.send('proc.a!one', msg('1'));
        await tuned.send('proc.a!two', msg('2'));
        await expect(tuned.send('proc.a!three', msg('3'))).rejects.toBeInstanceOf(ChannelFull);
        await expect(tuned.receive('proc.a!one')).resolves.toEqual(msg('1'));
        await expect(tuned.send('proc.a!three', msg('3'))).resolves.toBeUndefined();
      });
    });

    describe('groups', () => {
      it('sends to every member of a group', async () => {
        await layer.groupAdd('room', 'alice');
        await layer.groupAdd('room', 'bob');
        await layer.groupSend('room', msg('hi all'));
        await expect(layer.receive('alice')).resolves.toEqual(msg('hi all'));
        await expect(layer.receive('bob')).resolves.toEqual(msg('hi all'));
      });

      it('lists live members, and nothing for an unknown group', async () => {
        await layer.groupAdd('listed', 'x1');
        await layer.groupAdd('listed', 'x2');
        await layer.groupAdd('listed', 'x2');
        expect((await layer.groupChannels('listed')).sort()).toEqual(['x1', 'x2']);
        expect(await layer.groupChannels('nobody-here')).toEqual([]);
      });

      it('stops sending to a discarded member', async () => {
        await layer.groupAdd('room', 'leaver');
        await layer.groupDiscard('room', 'leaver');
        await layer.groupSend('room', msg('missed'));
        await layer.send('leaver', msg('marker'));
        await expect(layer.receive('leaver')).resolves.toEqual(msg('marker'));
        expect(await layer.groupChannels('room')).toEqual([]);
      });

      it('skips full members silently, still reaches the others, and counts the skips', async () => {
        const small = await make({ capacity: 1 });
        await small.groupAdd('room', 'full');
        await small.groupAdd('room', 'free');
        await small.send('full', msg('fills it'));
        const before = small.stats.groupSendSkippedFull;
        await expect(small.groupSend('room', msg('fan'))).resolves.toBeUndefined();
        expect(small.stats.groupSendSkippedFull - before).toBe(1);
        await expect(small.receive('free')).resolves.toEqual(msg('fan'));
        await expect(small.receive('full')).resolves.toEqual(msg('fills it'));
      });

      it('discards quietly from a group that does not exist', async () => {
        await expect(layer.groupDiscard('ghost', 'nobody')).resolves.toBeUndefined();
        await expect(layer.groupSend('ghost', msg('void'))).resolves.toBeUndefined();
      });
    });

    describe('expiry', () => {
      it('drops a message left unread for expiry seconds', async () => {
        const short = await make({ expiry });
        await short.send('stale', msg('old'));
        await target.advance(expiry + 0.5);
        await short.send('stale', msg('new'));
        await expect(short.receive('stale')).resolves.toEqual(msg('new'));
      });

      it('frees the capacity that expired messages held', async () => {
        const short = await make({ expiry, capacity: 1 });
        await short.send('stale', msg('old'));
        await target.advance(expiry + 0.5);
        await expect(short.send('stale', msg('new'))).resolves.toBeUndefined();
      });

      it('ends a membership groupExpiry seconds after the last groupAdd', async () => {
        const short = await make({ groupExpiry: expiry });
        await short.groupAdd('room', 'member');
        await target.advance(expiry + 0.5);
        await short.groupSend('room', msg('too late'));
        await short.send('member', msg('marker'));
        await expect(short.receive('member')).resolves.toEqual(msg('marker'));
        expect(await short.groupChannels('room')).toEqual([]);
      });
    });

    describe('attached channels (push delivery)', () => {
      it('pushes messages in order as they arrive, queued ones first', async () => {
        const channel = await layer.newChannel();
        await layer.send(channel, msg('queued'));
        const got: unknown[] = [];
        const detach = layer.attach(channel, (message) => {
          got.push(message.text);
        });
        await layer.send(channel, msg('direct'));
        await layer.groupAdd('room', channel);
        await layer.groupSend('room', msg('grouped'));
        await waitFor(() => got.length === 3);
        expect(got).toEqual(['queued', 'direct', 'grouped']);
        detach();
      });

      it('hands every member of a group the same frozen message, not a copy each', async () => {
        const got: ChannelMessage[] = [];
        const detachers: Array<() => void> = [];
        for (let i = 0; i < 50; i++) {
          const channel = await layer.newChannel();
          detachers.push(layer.attach(channel, (message) => void got.push(message)));
          await layer.groupAdd('big', channel);
        }
        await layer.groupSend('big', msg('shared'));
        await waitFor(() => got.length === 50);
        expect(new Set(got).size).toBe(1);
        expect(Object.isFrozen(got[0])).toBe(true);
        detachers.forEach((detach) => detach());
      });

      it('treats a receiver that returns false as a full channel', async () => {
        const channel = await layer.newChannel();
        const other = await layer.newChannel();
        const got: unknown[] = [];
        layer.attach(channel, () => false);
        layer.attach(other, (message) => void got.push(message.text));
        await expect(layer.send(channel, msg('refused'))).rejects.toBeInstanceOf(ChannelFull);
        await layer.groupAdd('room', channel);
        await layer.groupAdd('room', other);
        const before = layer.stats.groupSendSkippedFull;
        await layer.groupSend('room', msg('fan'));
        await waitFor(() => got.length === 1);
        await waitFor(() => layer.stats.groupSendSkippedFull - before === 1);
        expect(got).toEqual(['fan']);
      });

      it('switches a group member between queue and push as it is attached and detached', async () => {
        const channel = await layer.newChannel();
        await layer.groupAdd('switching', channel);
        await layer.groupSend('switching', msg('queued first'));
        const got: unknown[] = [];
        const detach = layer.attach(channel, (message) => void got.push(message.text));
        await layer.groupSend('switching', msg('pushed'));
        await waitFor(() => got.length === 2);
        detach();
        await layer.groupSend('switching', msg('queued again'));
        await expect(layer.receive(channel)).resolves.toEqual(msg('queued again'));
        expect(got).toEqual(['queued first', 'pushed']);
      });

      it('queues for a group member detached after the group sent to it', async () => {
        const channel = await layer.newChannel();
        const got: unknown[] = [];
        const detach = layer.attach(channel, (message) => void got.push(message.text));
        await layer.groupAdd('detaching', channel);
        await layer.groupSend('detaching', msg('pushed'));
        await waitFor(() => got.length === 1);
        detach();
        await layer.groupSend('detaching', msg('queued'));
        await expect(layer.receive(channel)).resolves.toEqual(msg('queued'));
        expect(got).toEqual(['pushed']);
      });

      it('queues again once detached', async () => {
        const channel = await layer.newChannel();
        const got: unknown[] = [];
        const detach = layer.attach(channel, (message) => void got.push(message.text));
        detach();
        await layer.send(channel, msg('after'));
        await expect(layer.receive(channel)).resolves.toEqual(msg('after'));
        expect(got).toEqual([]);
      });

      it('keeps an attached member past groupExpiry: it is alive while attached', async () => {
        const short = await make({ groupExpiry: expiry });
        const channel = await short.newChannel();
        const got: unknown[] = [];
        short.attach(channel, (message) => void got.push(message.text));
        await short.groupAdd('room', channel);
        await target.advance(expiry + 0.5);
        await short.groupSend('room', msg('still here'));
        await waitFor(() => got.length === 1);
        expect(got).toEqual(['still here']);
      });
    });

    describe('flush and close', () => {
      it('flush drops queued messages and groups', async () => {
        await layer.send('chan', msg('gone'));
        await layer.groupAdd('room', 'chan');
        await layer.flush();
        expect(await layer.groupChannels('room')).toEqual([]);
        await layer.send('chan', msg('fresh'));
        await expect(layer.receive('chan')).resolves.toEqual(msg('fresh'));
      });

      it('close rejects pending receives and is safe twice', async () => {
        const own = await target.create();
        const pending = own.receive('waiting');
        // Handled from the start: close may reject it before `close()` resolves.
        pending.catch(() => undefined);
        await own.close();
        await expect(pending).rejects.toThrow(/closed/);
        await expect(own.close()).resolves.toBeUndefined();
      });
    });
  });
}

/** Resolves once `condition` holds; push delivery may cross a process boundary (Redis). */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
