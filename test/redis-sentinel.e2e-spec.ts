import {
  HistoryFrame,
  RedisChannelLayer,
  RedisChannelLayerOptions,
  RedisRoomState,
} from '../src/index.js';
import { ChatTestClient } from '../src/testing/index.js';
import { describeChannelLayerConformance } from './channel-layer.conformance.js';
import { describeWithRedisBinaries } from './redis-cluster-support.js';
import { RedisSentinelGroup } from './redis-sentinel-support.js';
import { uniquePrefix } from './redis-test-support.js';
import { describeRoomStateConformance } from './room-state.conformance.js';
import { RunningChatApp, startChatApp } from './support/chat-app.js';
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

      const heard = new Set<string>();
      const listening = (async () => {
        for (;;) {
          const frame = await listener.next<{ type: string; message?: string }>(40_000);
          if (frame.type !== 'chat' || frame.message === undefined) continue;
          heard.add(frame.message);
          if (frame.message === 'last') return;
        }
      })();
      const answers = new Map<string, { type: string; code?: string }>();
      const answered = (async () => {
        for (;;) {
          const frame = await sender.next<{ type: string; id?: string; code?: string }>(40_000);
          if ((frame.type === 'ack' || frame.type === 'error') && frame.id) {
            answers.set(frame.id, frame);
          }
          if (frame.id === 'stop') return;
        }
      })();
      let sent = 0;
      const sendOne = (): string => {
        const id = `m${sent++}`;
        sender.send({ message: id, id });
        return id;
      };
      const waitAnswer = async (id: string): Promise<{ type: string; code?: string }> => {
        const deadline = Date.now() + 5000;
        while (!answers.has(id)) {
          if (Date.now() > deadline) throw new Error(`no answer to ${id}`);
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        return answers.get(id) as { type: string; code?: string };
      };

      for (let i = 0; i < 5; i++) {
        await expect(waitAnswer(sendOne())).resolves.toMatchObject({ type: 'ack' });
      }
      const killedAt = Date.now();
      await group.kill(await group.primary());
      let failed = 0;
      for (;;) {
        const id = sendOne();
        const answer = await waitAnswer(id);
        if (answer.type === 'error') {
          expect(answer).toMatchObject({ code: 'layer_unavailable' });
          failed++;
        } else if (failed > 0) {
          // Acked again: the listener on the other process hears the room again too.
          const deadline = Date.now() + 300;
          while (!heard.has(id) && Date.now() < deadline) {
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
          if (heard.has(id)) break;
        }
        if (Date.now() - killedAt > RESUME_WITHIN_MS) throw new Error('chat did not resume');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(failed).toBeGreaterThan(0);
      expect(Date.now() - killedAt).toBeLessThan(RESUME_WITHIN_MS);
      sender.send({ message: 'last', id: 'stop' });
      await Promise.all([answered, listening]);

      // Every message the sender was told was sent is in the history the new primary holds.
      const acked = [...answers]
        .filter(([id, answer]) => answer.type === 'ack' && id !== 'stop')
        .map(([id]) => id);
      // A join can still meet the other app's room store reconnecting (1013, as a client would
      // retry): joins too must work again within the stated time.
      let reader: ChatTestClient | undefined;
      while (!reader) {
        const attempt = await ChatTestClient.connect(b.wsUrl(`/ws/chat/${room}/?name=reader`));
        const greeted = await attempt.greeted().then(
          () => true,
          () => false,
        );
        if (greeted) reader = attempt;
        else await attempt.close();
        if (!reader && Date.now() - killedAt > RESUME_WITHIN_MS)
          throw new Error('joins did not resume');
        if (!reader) await new Promise((resolve) => setTimeout(resolve, 200));
      }
      const history = await reader.next<HistoryFrame>();
      const kept = new Set(history.messages.map((message) => message.message));
      expect(acked.filter((id) => !kept.has(id))).toEqual([]);
      await Promise.all([sender.close(), listener.close(), reader.close()]);
    }, 60_000);
  });
});
