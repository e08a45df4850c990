import {
  ChannelLayerUnavailable,
  ChannelMessage,
  RedisChannelLayer,
} from '../src/channel-layer/index.js';
import { waitFor } from './channel-layer.conformance.js';
import { RedisServerProcess, describeWithRedisServer, uniquePrefix } from './redis-test-support.js';
import { hearingRoom } from './support/listening.js';
import { deafen, onRedis } from './support/redis-processes.js';

const msg = (text: string): ChannelMessage => ({ type: 'test.message', text });

/** How long `attempt` took to reject, and with what. */
async function rejection(attempt: Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const started = Date.now();
  try {
    await attempt;
  } catch (error) {
    return { error, ms: Date.now() - started };
  }
  throw new Error('expected the operation to reject while Redis is down');
}

describeWithRedisServer('RedisChannelLayer when Redis goes away and comes back', () => {
  let server: RedisServerProcess;
  let prefix: string;
  const open: RedisChannelLayer[] = [];
  const processOf = (): RedisChannelLayer => {
    const layer = new RedisChannelLayer({ hosts: server.url, prefix });
    open.push(layer);
    return layer;
  };

  beforeAll(async () => {
    server = await RedisServerProcess.start();
    prefix = uniquePrefix();
  });

  afterAll(async () => {
    await Promise.all(open.map((layer) => layer.close()));
    await server.stop();
  });

  it('rejects promptly while down, then restores subscriptions and memberships', async () => {
    const a = processOf();
    const b = processOf();
    const got = { a: [] as unknown[], b: [] as unknown[] };
    const inA = await a.newChannel();
    const inB = await b.newChannel();
    a.attach(inA, (message) => void got.a.push(message.text));
    b.attach(inB, (message) => void got.b.push(message.text));
    await a.groupAdd('room', inA);
    await b.groupAdd('room', inB);
    await a.groupSend('room', msg('before'));
    await waitFor(() => got.a.length === 1 && got.b.length === 1);
    const pendingJob = b.receive('jobs');
    // Its queue checked before Redis goes (a PING after its POP on the same connection): only
    // receives Redis never answered for fail in an outage.
    await b.ping();

    await server.stop();

    for (const attempt of [
      a.groupSend('room', msg('lost')),
      a.send(inB, msg('lost')),
      a.groupAdd('room', 'late'),
      a.groupChannels('room'),
      a.receive('elsewhere'),
      a.ping(),
    ]) {
      const { error, ms } = await rejection(attempt);
      expect(error).toBeInstanceOf(ChannelLayerUnavailable);
      expect(ms).toBeLessThan(1000);
    }
    // A process started during the outage waits briefly for its first connection, then says so.
    const late = processOf();
    const { error, ms } = await rejection(late.send('jobs', msg('too early')));
    expect(error).toBeInstanceOf(ChannelLayerUnavailable);
    expect(ms).toBeLessThan(2000);

    // Back, empty: Redis lost every membership and subscription.
    await server.restart();

    await waitFor(async () => {
      await a.groupSend('room', msg('after')).catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 50));
      return got.a.includes('after') && got.b.includes('after');
    }, 10_000);
    expect(got.a).not.toContain('lost');
    expect(got.b).not.toContain('lost');
    expect((await late.groupChannels('room')).sort()).toEqual([inA, inB].sort());

    // Direct sends reach the other process again, and its pending receive survived.
    await a.send(inB, msg('direct'));
    await waitFor(() => got.b.includes('direct'));
    await late.send('jobs', msg('job'));
    await expect(pendingJob).resolves.toEqual(msg('job'));
  });

  const acl = (...args: string[]) => onRedis(server.port, (redis) => redis.call('ACL', ...args));

  /**
   * Two processes connected as a Redis user `user` with every right, `b`'s channel in `room`
   * and already hearing it; `got` is what `b` heard. The caller deletes the user.
   */
  async function twoProcessesAs(user: string) {
    await acl('SETUSER', user, 'on', '>secret', '~*', '&*', '+@all');
    const url = `redis://${user}:secret@127.0.0.1:${server.port}`;
    const shared = uniquePrefix();
    const a = new RedisChannelLayer({ hosts: url, prefix: shared });
    const b = new RedisChannelLayer({ hosts: url, prefix: shared });
    open.push(a, b);
    return { a, b, ...(await hearingRoom(a, b, 'room')) };
  }

  it('subscribes again when Redis refuses it on return, though the connection stays up', async () => {
    // A user whose pub/sub rights are taken away, then given back: Redis 7 drops its subscribed
    // connections, they reconnect at once, and SUBSCRIBE answers NOPERM on a live connection.
    const { a, b, got } = await twoProcessesAs('chat');
    const gaps: string[] = [];
    for (const [name, layer] of [
      ['a', a],
      ['b', b],
    ] as const) {
      layer.onDeliveryGap({
        lost: (groups) => gaps.push(`${name} lost ${groups.join()}`),
        back: (groups) => gaps.push(`${name} back ${groups.join()}`),
      });
    }
    await deafen(server.port, 'chat');
    expect(gaps).toEqual(['b lost room']);
    await acl('SETUSER', 'chat', 'allchannels');

    await waitFor(async () => {
      await a.groupSend('room', msg('after')).catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 50));
      return got.includes('after');
    }, 5000);
    // Each process lost its subscriptions and says which groups' deliveries it lost, once, and
    // when they are back (a subscribes to no group: it has no member).
    expect(gaps).toEqual(['b lost room', 'b back room']);
    await acl('DELUSER', 'chat');
  });

  it('says a group is back though its last member here left during the gap', async () => {
    // The chat holds the room's messages from `lost` to `back`: a group left out of `back` would
    // hold a later join's forever.
    const { b, inB } = await twoProcessesAs('leaver');
    const gaps: string[] = [];
    b.onDeliveryGap({
      lost: (groups) => gaps.push(`lost ${groups.join()}`),
      back: (groups) => gaps.push(`back ${groups.join()}`),
    });
    await acl('SETUSER', 'leaver', 'resetchannels');
    await waitFor(() => gaps.length === 1);
    await b.groupDiscard('room', inB);
    await acl('SETUSER', 'leaver', 'allchannels');
    await waitFor(() => gaps.length === 2, 5000);
    expect(gaps).toEqual(['lost room', 'back room']);
    await acl('DELUSER', 'leaver');
  });

  it('finds what was queued for a channel attached while its wakes cannot reach it', async () => {
    // b's queue was caught up; then its subscriptions are dropped and refused on return, so the
    // wake of a send is lost, and the channel attached after must look in the queue itself.
    await acl('SETUSER', 'deaf', 'on', '>secret', '~*', '&*', '+@all');
    const shared = uniquePrefix();
    const a = new RedisChannelLayer({ hosts: server.url, prefix: shared });
    const b = new RedisChannelLayer({
      hosts: `redis://deaf:secret@127.0.0.1:${server.port}`,
      prefix: shared,
    });
    open.push(a, b);
    const warm = await b.newChannel();
    const warmed = new Promise((resolve) => b.attach(warm, resolve));
    await a.send(warm, msg('warm'));
    await warmed;
    const later = await b.newChannel();
    // Its subscriber connected again, without subscriptions: b saw it close by then.
    await deafen(server.port, 'deaf');
    await a.send(later, msg('queued'));
    const heard = new Promise((resolve) =>
      b.attach(later, (message) => void resolve(message.text)),
    );
    await expect(heard).resolves.toBe('queued');
    await acl('SETUSER', 'deaf', 'allchannels');
    await acl('DELUSER', 'deaf');
  });

  it('adds its memberships again when Redis refuses them at first on return', async () => {
    // Redis comes back empty (FLUSHALL, every connection dropped) while refusing scripts for a
    // second: the first restore fails, and the next periodic refresh may be a minute away.
    const { a, inB } = await twoProcessesAs('scripts');
    await acl('SETUSER', 'scripts', '-evalsha', '-eval');
    await onRedis(server.port, async (redis) => {
      await redis.flushall();
      await redis.call('CLIENT', 'KILL', 'USER', 'scripts');
    });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await acl('SETUSER', 'scripts', '+evalsha', '+eval');

    // The other process sees the membership again (fan-out needs none: b kept its subscription).
    await waitFor(async () => {
      const members = await a.groupChannels('room').catch((): string[] => []);
      await new Promise((resolve) => setTimeout(resolve, 50));
      return members.includes(inB);
    }, 5000);
    await acl('DELUSER', 'scripts');
  });
});
