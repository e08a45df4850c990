import {
  ChatFrame,
  HistoryFrame,
  RedisChannelLayer,
  RedisRoomState,
  RedisRoomStateOptions,
} from '../src/index.js';
import { bucketTags, clusterSlot } from '../src/redis/cluster-slots.js';
import { consistentHash } from '../src/redis/consistent-hash.js';
import { ChatTestClient } from '../src/testing/index.js';
import { RedisClusterProcess, describeWithRedisCluster } from './redis-cluster-support.js';
import { uniquePrefix } from './redis-test-support.js';
import { RunningChatApp, startChatApp } from './support/chat-app.js';
import { chatThroughFailover, joinAgain } from './support/failover.js';
import { presenceOf } from './support/frames.js';

type Chat = Required<ChatFrame>;

/** How long chat may take to resume after a primary is killed: node timeout 1 s, election, refresh. */
const RESUME_WITHIN_MS = 10_000;

const slotOfRoom = (room: string): number => clusterSlot(bucketTags(16)[consistentHash(room, 16)]);

describeWithRedisCluster('Two app processes on a real Redis Cluster', () => {
  let cluster: RedisClusterProcess;
  let a: RunningChatApp;
  let b: RunningChatApp;

  // One deployment: both apps share the prefix, for the layer and the rooms alike.
  const prefix = uniquePrefix('apps');

  const startProcess = (): Promise<RunningChatApp> => {
    const hosts = cluster.url;
    const rooms: RedisRoomStateOptions = {
      hosts,
      prefix,
      historyLimit: 200,
      heartbeatInterval: 0.5,
      presenceTimeout: 3,
      sweepInterval: 0.5,
    };
    return startChatApp({
      layer: () => new RedisChannelLayer({ hosts, prefix }),
      roomState: () => new RedisRoomState(rooms),
      presenceDelayMs: 20,
      rateLimit: false,
    });
  };

  beforeAll(async () => {
    cluster = await RedisClusterProcess.start();
    [a, b] = await Promise.all([startProcess(), startProcess()]);
  }, 30_000);

  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await cluster?.stop();
  });

  async function enter(app: RunningChatApp, room: string, name: string): Promise<ChatTestClient> {
    const client = await app.join(`/ws/chat/${room}/?name=${name}`);
    await expect(client.next<HistoryFrame>()).resolves.toMatchObject({ type: 'history' });
    return client;
  }

  async function chats(client: ChatTestClient, count: number): Promise<Chat[]> {
    const got: Chat[] = [];
    while (got.length < count) got.push(await client.nextOfType<Chat>('chat'));
    return got;
  }

  it('delivers each message once to both processes, in each sender’s order', async () => {
    const ann = await enter(a, 'across', 'ann');
    const bob = await enter(b, 'across', 'bob');
    await presenceOf(ann, ['ann', 'bob']);
    for (let i = 0; i < 20; i++) {
      ann.send({ message: `ann ${i}` });
      bob.send({ message: `bob ${i}` });
    }
    for (const client of [ann, bob]) {
      const got = await chats(client, 40);
      const from = (user: string): string[] =>
        got.filter((frame) => frame.user === user).map((frame) => frame.message);
      expect(from('ann')).toEqual(Array.from({ length: 20 }, (_, i) => `ann ${i}`));
      expect(from('bob')).toEqual(Array.from({ length: 20 }, (_, i) => `bob ${i}`));
      expect(new Set(got.map((frame) => frame.id)).size).toBe(40);
      // One script appends and publishes: every reader gets the room's ids in order.
      expect(got.map((frame) => frame.id)).toEqual(
        [...got.map((frame) => frame.id)].sort((x, y) => compareIds(x, y)),
      );
    }
    const late = await a.join('/ws/chat/across/?name=late');
    const history = await late.next<HistoryFrame>();
    expect(history.messages).toHaveLength(40);
    await Promise.all([ann.close(), bob.close(), late.close()]);
  });

  it('carries a room’s traffic on its own shard only (INFO commandstats)', async () => {
    const room = 'counted';
    const ann = await enter(a, room, 'ann');
    const bob = await enter(b, room, 'bob');
    await presenceOf(ann, ['ann', 'bob']);
    ann.send({ message: 'warm up' });
    await chats(bob, 1);
    await chats(ann, 1);
    await cluster.resetStats();
    for (let i = 0; i < 10; i++) ann.send({ message: `m${i}` });
    await chats(bob, 10);
    await chats(ann, 10);
    const [owner, ...replicas] = await cluster.shardOf(slotOfRoom(room));
    for (const node of cluster.nodes) {
      const inShard = node.port === owner || replicas.includes(node.port);
      // Each message is appended (XADD) and published (SPUBLISH) on the room's primary, in one
      // script; no other shard sees it, and no node PUBLISHes, so nothing crosses the cluster
      // bus. (The shard's replicas get the effects by replication, a moment later: not counted.)
      if (node.port === owner || !inShard) {
        expect(await cluster.calls(node.port, 'xadd')).toBe(inShard ? 10 : 0);
        // At least one SPUBLISH per message there (the room's presence notices go the same way).
        const spublish = await cluster.calls(node.port, 'spublish');
        if (inShard) expect(spublish).toBeGreaterThanOrEqual(10);
        else expect(spublish).toBe(0);
      }
      expect(await cluster.calls(node.port, 'publish')).toBe(0);
    }
    await Promise.all([ann.close(), bob.close()]);
  });

  it(`keeps chatting through a primary killed mid-traffic: sends fail with layer_unavailable, chat resumes within ${RESUME_WITHIN_MS / 1000} s`, async () => {
    const room = 'failover';
    const sender = await enter(a, room, 'sender');
    const listener = await enter(b, room, 'listener');
    await presenceOf(sender, ['listener', 'sender']);
    const victim = await cluster.primaryOf(slotOfRoom(room));

    const outcome = await chatThroughFailover({
      sender,
      listener,
      kill: () => cluster.kill(victim),
      resumeWithinMs: RESUME_WITHIN_MS,
      describe: async () => `slot's primary now ${await cluster.primaryOf(slotOfRoom(room))}`,
    });
    expect(outcome.failed).toBeGreaterThan(0);
    expect(outcome.ackedAfterMs).toBeLessThan(RESUME_WITHIN_MS);
    // Live delivery to the other process resumes too (its subscription followed the failover).
    expect(outcome.heardAfterMs).toBeLessThan(RESUME_WITHIN_MS);

    // No silent loss: every message the sender was told was sent is in the room's history, and
    // joins work again within the stated time.
    const reader = await joinAgain(
      () => b.join(`/ws/chat/${room}/?name=reader`),
      outcome.killedAt + RESUME_WITHIN_MS,
    );
    const kept = new Set(reader.history.messages.map((m) => m.message));
    expect(outcome.acked.filter((id) => !kept.has(id))).toEqual([]);
    // Both apps are up, and memberships were restored: a new socket joins and hears the room.
    expect((await fetch(`${a.httpUrl}/api/rooms`)).status).toBe(200);
    expect((await fetch(`${b.httpUrl}/api/rooms`)).status).toBe(200);
    await Promise.all([sender.close(), listener.close(), reader.client.close()]);
  }, 40_000);

  it(`keeps chatting while the room’s slot moves to another primary: chat resumes within ${RESUME_WITHIN_MS / 1000} s`, async () => {
    const room = 'resharded';
    const sender = await enter(a, room, 'sender');
    const listener = await enter(b, room, 'listener');
    await presenceOf(sender, ['listener', 'sender']);
    const slot = slotOfRoom(room);
    const from = await cluster.primaryOf(slot);
    const to = (await cluster.primaries()).find(({ port }) => port !== from)?.port as number;

    const outcome = await chatThroughFailover({
      sender,
      listener,
      kill: () => cluster.moveSlot(slot, to),
      mayNotFail: true,
      resumeWithinMs: RESUME_WITHIN_MS,
      describe: async () => `slot's primary now ${await cluster.primaryOf(slot)}`,
    });
    expect(outcome.heardAfterMs).toBeLessThan(RESUME_WITHIN_MS);
    await expect(cluster.primaryOf(slot)).resolves.toBe(to);

    // The room's history and presence moved with the slot: a new socket on the other app gets
    // every message the sender was told was sent, and is told who is in the room.
    const reader = await joinAgain(
      () => a.join(`/ws/chat/${room}/?name=reader`),
      outcome.killedAt + RESUME_WITHIN_MS,
    );
    const kept = new Set(reader.history.messages.map((m) => m.message));
    expect(outcome.acked.filter((id) => !kept.has(id))).toEqual([]);
    await presenceOf(reader.client, ['listener', 'reader', 'sender']);
    await Promise.all([sender.close(), listener.close(), reader.client.close()]);
  }, 40_000);
});

function compareIds(x: string, y: string): number {
  const [xm, xs] = x.split('-').map(Number);
  const [ym, ys] = y.split('-').map(Number);
  return xm - ym || xs - ys;
}
