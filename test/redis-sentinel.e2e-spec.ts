import { RedisChannelLayer, RedisChannelLayerOptions, RedisRoomState } from '../src/index.js';
import { describeChannelLayerConformance } from './channel-layer.conformance.js';
import { describeWithRedisBinaries } from './redis-cluster-support.js';
import { RedisSentinelGroup } from './redis-sentinel-support.js';
import { uniquePrefix } from './redis-test-support.js';
import { describeRoomStateConformance } from './room-state.conformance.js';
import { RunningChatApp, startChatApp } from './support/chat-app.js';
import { chatThroughFailover, joinAgain } from './support/failover.js';
import { presenceOf } from './support/frames.js';

/** How long chat may take to resume after the primary is killed: down after 1 s, then the vote. */
const RESUME_WITHIN_MS = 15_000;

describeWithRedisBinaries('The layer, the room store and two apps on a real Sentinel group', () => {
  let group: RedisSentinelGroup;

  beforeAll(async () => {
    group = await RedisSentinelGroup.start();
  }, 30_000);

  afterAll(async () => {
    await group?.stop();
  });

  describeChannelLayerConformance('RedisChannelLayer on Sentinel', {
    create: (options?: RedisChannelLayerOptions) =>
      new RedisChannelLayer({ ...options, hosts: group.url, prefix: uniquePrefix() }),
    advance: (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000)),
    expiry: 1,
  });

  const prefixOf = new WeakMap<object, string>();
  describeRoomStateConformance('RedisRoomState on Sentinel', {
    create: (options) => {
      const prefix = uniquePrefix('rooms');
      const store = new RedisRoomState({ ...options, hosts: [group.hosts], prefix });
      prefixOf.set(store, prefix);
      return store;
    },
    layerFor: (store) =>
      new RedisChannelLayer({ hosts: [group.hosts], prefix: prefixOf.get(store) }),
  });

  describe('a failover mid-traffic', () => {
    let a: RunningChatApp;
    let b: RunningChatApp;
    const prefix = uniquePrefix('sentinel');

    const startProcess = (): Promise<RunningChatApp> =>
      startChatApp({
        layer: () => new RedisChannelLayer({ hosts: group.url, prefix }),
        roomState: () =>
          new RedisRoomState({
            hosts: group.url,
            prefix,
            historyLimit: 500,
            heartbeatInterval: 0.5,
            presenceTimeout: 3,
            sweepInterval: 0.5,
          }),
        presenceDelayMs: 20,
        rateLimit: false,
      });

    beforeAll(async () => {
      [a, b] = await Promise.all([startProcess(), startProcess()]);
    });

    afterAll(async () => {
      await Promise.all([a?.close(), b?.close()]);
    });

    it(`keeps chatting through the primary killed: sends fail with layer_unavailable, chat resumes within ${RESUME_WITHIN_MS / 1000} s`, async () => {
      const room = 'failover';
      const sender = await a.join(`/ws/chat/${room}/?name=sender`);
      const listener = await b.join(`/ws/chat/${room}/?name=listener`);
      await presenceOf(sender, ['listener', 'sender']);

      const outcome = await chatThroughFailover({
        sender,
        listener,
        kill: async () => group.kill(await group.primary()),
        resumeWithinMs: RESUME_WITHIN_MS,
        describe: async () => `the sentinels name ${await group.primary()} as the primary`,
      });
      expect(outcome.failed).toBeGreaterThan(0);
      expect(outcome.heardAfterMs).toBeLessThan(RESUME_WITHIN_MS);

      // Every message the sender was told was sent is in the history the new primary holds, and
      // joins work again within the stated time.
      const reader = await joinAgain(
        () => b.join(`/ws/chat/${room}/?name=reader`),
        outcome.killedAt + RESUME_WITHIN_MS,
      );
      const kept = new Set(reader.history.messages.map((message) => message.message));
      expect(outcome.acked.filter((id) => !kept.has(id))).toEqual([]);
      await Promise.all([sender.close(), listener.close(), reader.client.close()]);
    }, 60_000);
  });
});
