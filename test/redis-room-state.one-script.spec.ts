import { Redis } from 'ioredis';
import {
  ChannelLayerUnavailable,
  ChannelMessage,
  ChatRecord,
  RedisChannelLayer,
  RedisRoomState,
  compareRecordIds,
} from '../src/index.js';
import { waitFor } from './channel-layer.conformance.js';
import { socketOn } from './room-state.conformance.js';
import {
  REDIS_URL,
  RedisServerProcess,
  describeWithRedis,
  describeWithRedisServer,
  uniquePrefix,
} from './redis-test-support.js';

const CHAT = 'chat.message';

/** No heartbeat or sweep while a test counts commands. */
const QUIET = { heartbeatInterval: 3600, presenceTimeout: 7200, sweepInterval: 3600 };

/** A socket of `room` on `layer`: a process-local channel, attached, in the room's group. */
async function receiverIn(layer: RedisChannelLayer, room: string): Promise<ChannelMessage[]> {
  const { channel, received } = await socketOn(layer);
  await layer.groupAdd(room, channel);
  return received;
}

/** What a receiver of `groupSend({ ...record, type })` gets, as the JSON it was sent as. */
function sentAs(record: ChatRecord): string {
  return JSON.stringify({ ...record, type: CHAT });
}

describeWithRedisServer(
  'RedisRoomState in one script on a private Redis: append, join, presence',
  () => {
    let server: RedisServerProcess;
    let stats: Redis;
    const closing: Array<{ close(): Promise<void> }> = [];

    /** A store and a layer as one app process has them, on `hosts` (the private server's). */
    function processOn(
      options: { prefix?: string; layerHosts?: string; symmetricEncryptionKeys?: string[] } = {},
    ): { store: RedisRoomState; layer: RedisChannelLayer } {
      const prefix = options.prefix ?? uniquePrefix();
      const store = new RedisRoomState({ hosts: server.url, prefix, ...QUIET });
      const layer = new RedisChannelLayer({
        hosts: options.layerHosts ?? server.url,
        prefix,
        symmetricEncryptionKeys: options.symmetricEncryptionKeys,
      });
      closing.push(store, layer);
      return { store, layer };
    }

    /** Redis commands since the last RESETSTAT, inside scripts included: name → calls. */
    async function commandStats(): Promise<Map<string, number>> {
      const calls = new Map<string, number>();
      const info = await stats.info('commandstats');
      for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
        if (/^(info|config)/.test(match[1])) continue;
        calls.set(match[1], Number(match[2]));
      }
      return calls;
    }

    /** Sends `count` messages one after another; checks what the receiver got against them. */
    async function sendAndCheck(
      store: RedisRoomState,
      layer: RedisChannelLayer,
      received: ChannelMessage[],
      count: number,
    ): Promise<ChatRecord[]> {
      const already = received.length;
      const records: ChatRecord[] = [];
      for (let i = 0; i < count; i++) {
        records.push(
          await store.appendAndSend('r', { message: `m${i}`, user: 'ann' }, layer, CHAT),
        );
      }
      await waitFor(() => received.length === already + count);
      expect(received.slice(already).map((message) => JSON.stringify(message))).toEqual(
        records.map(sentAs),
      );
      expect((await store.history('r')).slice(-count)).toEqual(records);
      return records;
    }

    /** Calls of each Redis command (inside scripts too) while `run` runs, with no one else's. */
    async function commandsOf(run: () => Promise<unknown>): Promise<Map<string, number>> {
      await stats.config('RESETSTAT');
      await run();
      return commandStats();
    }

    /** The presence messages among what a socket received. */
    const presenceIn = (received: ChannelMessage[]): ChannelMessage[] =>
      received.filter((message) => message.type === 'presence');

    beforeAll(async () => {
      // A private server: nobody else's commands in its counters.
      server = await RedisServerProcess.start();
      stats = new Redis(server.url);
    });

    afterAll(async () => {
      await Promise.all(closing.splice(0).map((closable) => closable.close()));
      await stats.quit();
      await server.stop();
    });

    it('appends and publishes a message in one script call, as groupSend would send it', async () => {
      const { store, layer } = processOn();
      const received = await receiverIn(layer, 'r');
      await sendAndCheck(store, layer, received, 1); // loads the script
      await stats.config('RESETSTAT');
      const records = await sendAndCheck(store, layer, received, 10);
      const calls = await commandStats();
      expect(calls.get('evalsha')).toBe(10);
      expect(calls.get('eval')).toBeUndefined();
      expect(calls.get('xadd')).toBe(10);
      expect(calls.get('publish')).toBe(10);
      for (let i = 1; i < records.length; i++) {
        expect(compareRecordIds(records[i - 1].id, records[i].id)).toBeLessThan(0);
      }
    });

    it('still pushes to ordinary members, as groupSend does', async () => {
      const { store, layer } = processOn();
      await layer.groupAdd('r', 'worker');
      const record = await store.appendAndSend(
        'r',
        { message: 'queued', user: 'ann' },
        layer,
        CHAT,
      );
      const message = await layer.receive('worker');
      expect(JSON.stringify(message)).toBe(sentAs(record));
    });

    it('falls back to append, then groupSend, with a layer that encrypts', async () => {
      const { store, layer } = processOn({ symmetricEncryptionKeys: ['secret'] });
      const received = await receiverIn(layer, 'r');
      await sendAndCheck(store, layer, received, 1);
      await stats.config('RESETSTAT');
      await sendAndCheck(store, layer, received, 5);
      expect((await commandStats()).get('evalsha')).toBe(10);
    });

    it('falls back when the group is on another Redis than the room', async () => {
      const { store, layer } = processOn({ layerHosts: REDIS_URL });
      const received = await receiverIn(layer, 'r');
      await sendAndCheck(store, layer, received, 3);
      await layer.flush(); // its keys on the shared Redis
    });

    it('falls back to a layer subclass’s own groupSend', async () => {
      const prefix = uniquePrefix();
      const sent: string[] = [];
      class AuditedLayer extends RedisChannelLayer {
        override async groupSend(group: string, message: ChannelMessage): Promise<void> {
          await super.groupSend(group, message);
          sent.push(group);
        }
      }
      const layer = new AuditedLayer({ hosts: server.url, prefix });
      const store = new RedisRoomState({ hosts: server.url, prefix, ...QUIET });
      closing.push(store, layer);
      const received = await receiverIn(layer, 'r');
      await sendAndCheck(store, layer, received, 2);
      expect(sent).toEqual(['r', 'r']);
    });

    it('enters a room in one script call: group, presence and the history after `since`', async () => {
      const { store, layer } = processOn();
      const first = await socketOn(layer);
      await store.enter('r', first.channel, 'ann', layer); // subscribes to the room, loads the script
      // Attached before the appends: its catch-up of what was queued for it is done by then.
      const second = await socketOn(layer);
      const said: ChatRecord[] = [];
      for (let i = 0; i < 3; i++)
        said.push(await store.append('r', { message: `m${i}`, user: 'ann' }));
      let history: ChatRecord[] = [];
      const calls = await commandsOf(async () => {
        history = await store.enter('r', second.channel, 'bob', layer, said[0].id);
      });
      expect(history).toEqual(said.slice(1));
      // One call from the process; what ran inside it: the membership, presence, the read.
      expect(
        [...calls.keys()].filter(
          (name) =>
            !['zadd', 'pexpire', 'hget', 'hset', 'hincrby', 'hlen', 'xrevrange', 'time'].includes(
              name,
            ),
        ),
      ).toEqual(['evalsha']);
      expect(calls.get('evalsha')).toBe(1);
      expect(calls.get('xrevrange')).toBe(1);
      await expect(store.users('r')).resolves.toEqual(['ann', 'bob']);
      await expect(layer.groupChannels('r')).resolves.toEqual(
        expect.arrayContaining([first.channel, second.channel]),
      );
      const record = await store.appendAndSend('r', { message: 'after', user: 'bob' }, layer, CHAT);
      await waitFor(() => second.received.length === 1);
      expect(second.received[0]).toMatchObject({ id: record.id, message: 'after' });
    });

    it('enters in three steps, with the same result, when the group is on another Redis', async () => {
      const prefix = uniquePrefix();
      const { store, layer } = processOn({ prefix, layerHosts: REDIS_URL });
      const said = await store.append('r', { message: 'before', user: 'ann' });
      const socket = await socketOn(layer);
      const calls = await commandsOf(async () => {
        await expect(store.enter('r', socket.channel, 'ann', layer)).resolves.toEqual([said]);
      });
      expect(calls.get('xrevrange')).toBe(1);
      await expect(store.users('r')).resolves.toEqual(['ann']);
      await store.appendAndSend('r', { message: 'after', user: 'ann' }, layer, CHAT);
      await waitFor(() => socket.received.length === 1);
      await layer.flush(); // its keys on the shared Redis
    });

    it('enters a crowd of one room in one script call, each from its own point', async () => {
      const { store, layer } = processOn();
      const first = await socketOn(layer);
      await store.enter('r', first.channel, 'ann', layer); // subscribes to the room, loads the script
      const said: ChatRecord[] = [];
      for (let i = 0; i < 3; i++)
        said.push(await store.append('r', { message: `m${i}`, user: 'ann' }));
      const crowd = await Promise.all(Array.from({ length: 30 }, () => socketOn(layer)));
      const resumeFrom = [undefined, said[0].id, said[1].id];
      let histories: ChatRecord[][] = [];
      const calls = await commandsOf(async () => {
        histories = await Promise.all(
          crowd.map((socket, i) =>
            store.enter('r', socket.channel, `u${i}`, layer, resumeFrom[i % 3]),
          ),
        );
      });
      // They came in one turn: one call, and one read for each point they resume from.
      expect(calls.get('evalsha')).toBe(1);
      expect(calls.get('xrevrange')).toBe(3);
      histories.forEach((history, i) => expect(history).toEqual(said.slice(i % 3)));
      expect(await store.users('r')).toHaveLength(31);
      await expect(layer.groupChannels('r')).resolves.toEqual(
        expect.arrayContaining(crowd.map((socket) => socket.channel)),
      );
      await store.appendAndSend('r', { message: 'after', user: 'ann' }, layer, CHAT);
      await waitFor(() => crowd.every((socket) => socket.received.length === 1));
    });

    it('takes at most 100 joins into one script call', async () => {
      const { store, layer } = processOn();
      const first = await socketOn(layer);
      await store.enter('r', first.channel, 'ann', layer);
      const crowd = await Promise.all(Array.from({ length: 150 }, () => socketOn(layer)));
      const calls = await commandsOf(() =>
        Promise.all(crowd.map((socket, i) => store.enter('r', socket.channel, `u${i}`, layer))),
      );
      expect(calls.get('evalsha')).toBe(2);
      expect(await store.users('r')).toHaveLength(151);
    });

    it('leaves a crowd of one room in one script call: group and presence', async () => {
      const { store, layer } = processOn();
      const crowd = await Promise.all(Array.from({ length: 30 }, () => socketOn(layer)));
      await Promise.all(crowd.map((socket, i) => store.enter('r', socket.channel, `u${i}`, layer)));
      const staying = crowd.pop() as { channel: string; received: ChannelMessage[] };
      const calls = await commandsOf(() =>
        Promise.all(crowd.map((socket) => store.exit('r', socket.channel, layer))),
      );
      expect(calls.get('evalsha')).toBe(1);
      await expect(store.users('r')).resolves.toEqual(['u29']);
      await expect(layer.groupChannels('r')).resolves.toEqual([staying.channel]);
      await store.appendAndSend('r', { message: 'after', user: 'u29' }, layer, CHAT);
      await waitFor(() => staying.received.length === 1);
      expect(crowd.every((socket) => socket.received.length === 0)).toBe(true);
    });

    it('leaves in two steps, with the same result, when the group is on another Redis', async () => {
      const { store, layer } = processOn({ layerHosts: REDIS_URL });
      const [ann, bob] = [await socketOn(layer), await socketOn(layer)];
      await store.enter('r', ann.channel, 'ann', layer);
      await store.enter('r', bob.channel, 'bob', layer);
      await store.exit('r', ann.channel, layer);
      await expect(store.users('r')).resolves.toEqual(['bob']);
      await expect(layer.groupChannels('r')).resolves.toEqual([bob.channel]);
      await layer.flush(); // its keys on the shared Redis
    });

    it('tells a room once per change, whichever processes saw it', async () => {
      const prefix = uniquePrefix();
      const [a, b] = [processOn({ prefix }), processOn({ prefix })];
      const ann = await socketOn(a.layer);
      const bob = await socketOn(b.layer);
      await Promise.all([
        a.store.enter('r', ann.channel, 'ann', a.layer),
        b.store.enter('r', bob.channel, 'bob', b.layer),
      ]);
      // Both processes saw a join: the first to announce sends, the other finds it told.
      await expect(a.store.sendPresence('r', a.layer, 'presence', 100)).resolves.toBe(true);
      await expect(b.store.sendPresence('r', b.layer, 'presence', 100)).resolves.toBe(false);
      const told = { type: 'presence', room: 'r', users: ['ann', 'bob'], count: 2 };
      for (const socket of [ann, bob]) {
        await waitFor(() => presenceIn(socket.received).length === 1);
        expect(presenceIn(socket.received)).toEqual([told]);
      }
      // A change after it is told again, once; a second tab of a user is a change too.
      const tab = await socketOn(b.layer);
      await b.store.enter('r', tab.channel, 'bob', b.layer);
      await expect(a.store.sendPresence('r', a.layer, 'presence', 1)).resolves.toBe(true);
      await expect(b.store.sendPresence('r', b.layer, 'presence', 1)).resolves.toBe(false);
      await waitFor(() => presenceIn(ann.received).length === 2);
      expect(presenceIn(ann.received)[1]).toEqual({ ...told, users: ['ann'] });
      await a.store.leave('r', ann.channel);
      await expect(b.store.sendPresence('r', b.layer, 'presence', 100)).resolves.toBe(true);
      await waitFor(() => presenceIn(bob.received).length === 3);
      expect(presenceIn(bob.received)[2]).toEqual({ ...told, users: ['bob'], count: 1 });
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(presenceIn(ann.received)).toHaveLength(3);
    });

    it('checks and sends in one script call, and escapes names as JSON', async () => {
      const { store, layer } = processOn();
      const socket = await socketOn(layer);
      const name = 'Zoë "the \\ quote" </b> 🎉';
      await store.enter('r', socket.channel, name, layer);
      await store.sendPresence('r', layer, 'presence', 100); // loads the script
      const other = await socketOn(layer);
      await store.enter('r', other.channel, 'ann', layer);
      const calls = await commandsOf(() => store.sendPresence('r', layer, 'presence', 100));
      expect(calls.get('evalsha')).toBe(1);
      expect(calls.get('publish')).toBe(1);
      await waitFor(() => presenceIn(socket.received).length === 2);
      expect(presenceIn(socket.received)[1]).toEqual({
        type: 'presence',
        room: 'r',
        users: [name, 'ann'], // by their bytes: 'Z' before 'a'
        count: 2,
      });
    });

    it('tells once too where it checks first and sends after (a layer that encrypts)', async () => {
      const prefix = uniquePrefix();
      const keys = { symmetricEncryptionKeys: ['secret'] };
      const [a, b] = [processOn({ prefix, ...keys }), processOn({ prefix, ...keys })];
      const ann = await socketOn(a.layer);
      await a.store.enter('r', ann.channel, 'ann', a.layer);
      await expect(a.store.sendPresence('r', a.layer, 'presence', 100)).resolves.toBe(true);
      await expect(b.store.sendPresence('r', b.layer, 'presence', 100)).resolves.toBe(false);
      await waitFor(() => presenceIn(ann.received).length === 1);
      expect(presenceIn(ann.received)).toEqual([
        { type: 'presence', room: 'r', users: ['ann'], count: 1 },
      ]);
    });

    it('rejects with ChannelLayerUnavailable while Redis is away', async () => {
      const { store, layer } = processOn();
      await receiverIn(layer, 'r');
      await server.stop();
      await expect(
        store.appendAndSend('r', { message: 'lost', user: 'ann' }, layer, CHAT),
      ).rejects.toBeInstanceOf(ChannelLayerUnavailable);
      // Back and reconnected, so everything closes at once: ioredis keeps a 2 s timer for a client
      // closed while reconnecting.
      await server.restart();
      const answers = (call: () => Promise<unknown>) => (): Promise<boolean> =>
        call().then(
          () => true,
          () => false,
        );
      await waitFor(answers(() => layer.ping()));
      await waitFor(answers(() => store.history('r')));
      await stats.ping();
    });
  },
);

describeWithRedis('RedisRoomState.appendAndSend across processes', () => {
  const prefix = uniquePrefix('order');
  let processes: Array<{ store: RedisRoomState; layer: RedisChannelLayer }>;

  beforeAll(() => {
    // Two app processes: their own connections, one prefix.
    processes = [0, 1].map(() => ({
      store: new RedisRoomState({ hosts: REDIS_URL, prefix }),
      layer: new RedisChannelLayer({ hosts: REDIS_URL, prefix }),
    }));
  });

  afterAll(async () => {
    await processes[0].layer.flush(); // the layer's keys and the rooms' under the prefix
    for (const { store, layer } of processes) await Promise.all([store.close(), layer.close()]);
  });

  it('delivers a room’s messages in id order on every process, whoever sent them', async () => {
    const perProcess = 300;
    const receivers = await Promise.all(processes.map(({ layer }) => receiverIn(layer, 'r')));
    // Both processes send, none waiting for the other or for its own previous message, a message
    // each per event-loop turn so their appends interleave: as two steps (append, then
    // groupSend), ids could be picked in one order and published in another.
    const sending: Array<Promise<ChatRecord>> = [];
    for (let i = 0; i < perProcess; i++) {
      for (const [sender, { store, layer }] of processes.entries()) {
        const message = { message: `p${sender}-${i}`, user: `u${sender}` };
        sending.push(store.appendAndSend('r', message, layer, CHAT));
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    const sent = await Promise.all(sending);
    const ids = sent.map((record) => record.id).sort(compareRecordIds);
    expect(new Set(ids).size).toBe(2 * perProcess);
    for (const received of receivers) {
      await waitFor(() => received.length === 2 * perProcess);
      expect(received.map((message) => message.id)).toEqual(ids);
    }
  });
});
