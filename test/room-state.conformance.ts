import {
  ChannelLayer,
  ChannelMessage,
  ChatRecord,
  RoomState,
  RoomStateOptions,
  compareRecordIds,
  isRecordId,
  recordBytes,
} from '../src/index.js';
import { waitFor } from './channel-layer.conformance.js';

/** A socket's channel on `layer`: made and attached, in no group yet; what it receives. */
export async function socketOn(
  layer: ChannelLayer,
): Promise<{ channel: string; received: ChannelMessage[] }> {
  const received: ChannelMessage[] = [];
  const channel = await layer.newChannel('chat');
  layer.attach(channel, (message) => void received.push(message));
  return { channel, received };
}

/** How a conformance run builds stores for one implementation. */
export interface RoomStateTarget {
  /** A fresh, empty store with these options, seeing no other store's rooms. The suite closes it. */
  create(options?: RoomStateOptions): Promise<RoomState> | RoomState;
  /** A channel layer as an app would pair with `store`, of the same deployment. The suite closes it. */
  layerFor(store: RoomState): Promise<ChannelLayer> | ChannelLayer;
}

/**
 * The RoomState contract as one suite: history (order, ids, `since`; bounds in records and bytes
 * per room, in rooms and bytes in all, and their stats) and presence (tabs, rooms, counts, the
 * busiest rooms), run unchanged against every implementation.
 */
export function describeRoomStateConformance(name: string, target: RoomStateTarget): void {
  describe(`${name} conforms to the RoomState contract`, () => {
    const open: RoomState[] = [];
    const make = async (options?: RoomStateOptions): Promise<RoomState> => {
      const store = await target.create(options);
      open.push(store);
      return store;
    };
    let rooms: RoomState;

    beforeEach(async () => {
      rooms = await make({ historyLimit: 5 });
    });

    const layers: ChannelLayer[] = [];

    afterEach(async () => {
      await Promise.all(open.splice(0).map((store) => store.close()));
      await Promise.all(layers.splice(0).map((layer) => layer.close()));
    });

    /** Appends `count` messages `m1`… from `user`, one after another; returns their ids. */
    async function say(room: string, count: number, user = 'ann'): Promise<string[]> {
      const ids: string[] = [];
      for (let i = 1; i <= count; i++) {
        ids.push((await rooms.append(room, { message: `m${i}`, user })).id);
      }
      return ids;
    }

    describe('history', () => {
      it('stamps an appended message as a chat record with room, user, id and time', async () => {
        const before = Date.now();
        const record = await rooms.append('r', { message: 'hi', user: 'ann' });
        expectStamped(record, before);
      });

      it('returns the records themselves, oldest first', async () => {
        const first = await rooms.append('r', { message: 'one', user: 'ann' });
        const second = await rooms.append('r', { message: 'two', user: 'bob' });
        await expect(rooms.history('r')).resolves.toEqual([first, second]);
      });

      it('keeps only the last historyLimit records', async () => {
        await say('r', 8);
        const history = await rooms.history('r');
        expect(history.map((record) => record.message)).toEqual(['m4', 'm5', 'm6', 'm7', 'm8']);
      });

      it('keeps nothing with historyLimit 0, yet still hands out increasing ids', async () => {
        rooms = await make({ historyLimit: 0 });
        const ids = await say('r', 3);
        expect(ids.every(isRecordId)).toBe(true);
        expect([...ids].sort(compareRecordIds)).toEqual(ids);
        expect(new Set(ids).size).toBe(3);
        await expect(rooms.history('r')).resolves.toEqual([]);
      });

      it('has an empty history for a room nobody wrote in', async () => {
        await expect(rooms.history('silent')).resolves.toEqual([]);
        await expect(rooms.history('silent', '0-0')).resolves.toEqual([]);
      });

      it('gives ids that increase within a room, appends in order', async () => {
        rooms = await make({ historyLimit: 50 });
        const ids = await say('r', 30);
        for (let i = 1; i < ids.length; i++) {
          expect(compareRecordIds(ids[i - 1], ids[i])).toBeLessThan(0);
        }
      });

      it('gives concurrent appends distinct ids, and history in id order', async () => {
        rooms = await make({ historyLimit: 50 });
        const records = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            rooms.append('r', { message: `c${i}`, user: 'ann' }),
          ),
        );
        expect(new Set(records.map((record) => record.id)).size).toBe(20);
        const ids = (await rooms.history('r')).map((record) => record.id);
        expect(ids).toHaveLength(20);
        expect([...ids].sort(compareRecordIds)).toEqual(ids);
      });

      it('keeps rooms apart', async () => {
        await rooms.append('a', { message: 'in a', user: 'ann' });
        await rooms.append('b', { message: 'in b', user: 'bob' });
        const history = await rooms.history('a');
        expect(history.map((record) => [record.room, record.message])).toEqual([['a', 'in a']]);
      });

      it('returns exactly the records after `since`', async () => {
        const ids = await say('r', 4);
        const after = await rooms.history('r', ids[1]);
        expect(after.map((record) => record.id)).toEqual(ids.slice(2));
      });

      it('returns nothing after the newest id', async () => {
        const ids = await say('r', 3);
        await expect(rooms.history('r', ids[2])).resolves.toEqual([]);
      });

      it('returns all it still holds when `since` is older than its oldest record', async () => {
        const ids = await say('r', 8);
        const history = await rooms.history('r', ids[0]);
        expect(history.map((record) => record.id)).toEqual(ids.slice(3));
        const fromZero = await rooms.history('r', '0-0');
        expect(fromZero.map((record) => record.id)).toEqual(ids.slice(3));
      });
    });

    describe('history bounds', () => {
      /** A message from ann whose record counts exactly `bytes` (at least 84), tagged `tag`. */
      const sized = (tag: string, bytes: number): { message: string; user: string } => ({
        message: tag.padEnd(bytes - 80 - 'ann'.length, '.'),
        user: 'ann',
      });

      /** Appends the records `tags` of `bytes` each to `room`, one after another. */
      async function sayBytes(store: RoomState, room: string, tags: string[], bytes: number) {
        for (const tag of tags) await store.append(room, sized(tag, bytes));
      }

      const tagsOf = (history: ChatRecord[]): string[] =>
        history.map((record) => record.message.replace(/\.+$/, ''));

      it('keeps at most historyBytes per room, dropping the oldest', async () => {
        rooms = await make({ historyLimit: 50, historyBytes: 1000 });
        await sayBytes(rooms, 'r', ['1', '2', '3', '4', '5', '6', '7'], 200);
        const history = await rooms.history('r');
        expect(tagsOf(history)).toEqual(['3', '4', '5', '6', '7']);
        expect(history.reduce((sum, record) => sum + recordBytes(record), 0)).toBe(1000);
      });

      it('counts a record’s bytes in UTF-8', async () => {
        rooms = await make({ historyLimit: 50, historyBytes: 1000 });
        const wide = { message: 'é'.repeat(100), user: 'ann' }; // 200 bytes, 100 characters
        expect(recordBytes(wide)).toBe(283);
        for (let i = 0; i < 5; i++) await rooms.append('r', wide);
        await expect(rooms.history('r')).resolves.toHaveLength(3);
      });

      it('always keeps the newest record, even one larger than historyBytes alone', async () => {
        rooms = await make({ historyLimit: 50, historyBytes: 1000 });
        await sayBytes(rooms, 'r', ['small'], 200);
        await sayBytes(rooms, 'r', ['big'], 1500);
        expect(tagsOf(await rooms.history('r'))).toEqual(['big']);
        await sayBytes(rooms, 'r', ['after'], 200);
        expect(tagsOf(await rooms.history('r'))).toEqual(['after']);
      });

      it('applies whichever of historyLimit and historyBytes is tighter', async () => {
        rooms = await make({ historyLimit: 3, historyBytes: 1000 });
        await sayBytes(rooms, 'few', ['1', '2', '3', '4'], 100);
        expect(tagsOf(await rooms.history('few'))).toEqual(['2', '3', '4']);
        await sayBytes(rooms, 'big', ['1', '2', '3', '4'], 400);
        expect(tagsOf(await rooms.history('big'))).toEqual(['3', '4']);
      });

      it('keeps the history of at most maxRooms rooms, deleting the least recently written', async () => {
        rooms = await make({ maxRooms: 3 });
        await rooms.append('a', { message: 'a1', user: 'ann' });
        await rooms.append('b', { message: 'b1', user: 'ann' });
        await rooms.append('c', { message: 'c1', user: 'ann' });
        await rooms.append('a', { message: 'a2', user: 'ann' }); // b is now the oldest written
        await rooms.append('d', { message: 'd1', user: 'ann' });
        await expect(rooms.history('b')).resolves.toEqual([]);
        const kept = await Promise.all(['a', 'c', 'd'].map((room) => rooms.history(room)));
        expect(kept.map((history) => history.map((record) => record.message))).toEqual([
          ['a1', 'a2'],
          ['c1'],
          ['d1'],
        ]);
      });

      it('starts a fresh history in an evicted room written to again, with later ids', async () => {
        rooms = await make({ maxRooms: 2 });
        const old = await rooms.append('a', { message: 'old', user: 'ann' });
        await rooms.append('b', { message: 'b1', user: 'ann' });
        await rooms.append('c', { message: 'c1', user: 'ann' });
        const again = await rooms.append('a', { message: 'again', user: 'ann' });
        await expect(rooms.history('a')).resolves.toEqual([again]);
        expect(compareRecordIds(old.id, again.id)).toBeLessThan(0);
        await expect(rooms.history('b')).resolves.toEqual([]);
      });

      it('never evicts presence: members stay in a room whose history went', async () => {
        rooms = await make({ maxRooms: 2 });
        await rooms.join('a', 'tab-1', 'ann');
        await rooms.join('a', 'tab-2', 'bob');
        await rooms.append('a', { message: 'a1', user: 'ann' });
        await rooms.append('b', { message: 'b1', user: 'ann' });
        await rooms.append('c', { message: 'c1', user: 'ann' });
        await expect(rooms.history('a')).resolves.toEqual([]);
        await expect(rooms.users('a')).resolves.toEqual(['ann', 'bob']);
        await expect(rooms.rooms()).resolves.toEqual([{ room: 'a', members: 2 }]);
      });

      it('deletes the least recently written rooms’ history while all rooms hold more than maxHistoryBytes', async () => {
        rooms = await make({ historyLimit: 50, historyBytes: 1000, maxHistoryBytes: 1000 });
        await sayBytes(rooms, 'a', ['a1', 'a2'], 200);
        await sayBytes(rooms, 'b', ['b1', 'b2'], 200);
        await sayBytes(rooms, 'c', ['c1'], 200); // 1000 bytes in all: within
        await expect(rooms.history('a')).resolves.toHaveLength(2);
        await sayBytes(rooms, 'c', ['c2'], 200); // 1200: a goes, 800 left
        await expect(rooms.history('a')).resolves.toEqual([]);
        expect(tagsOf(await rooms.history('b'))).toEqual(['b1', 'b2']);
        expect(tagsOf(await rooms.history('c'))).toEqual(['c1', 'c2']);
        expect(rooms.stats.historyRoomsEvicted).toBe(1);
      });

      it('counts what trimming dropped out of maxHistoryBytes', async () => {
        rooms = await make({ historyLimit: 2, historyBytes: 1000, maxHistoryBytes: 1000 });
        await sayBytes(rooms, 'a', ['a1', 'a2', 'a3', 'a4'], 200); // 400 kept
        await sayBytes(rooms, 'b', ['b1', 'b2', 'b3'], 200); // 400 kept: 800 in all
        await sayBytes(rooms, 'c', ['c1'], 200); // 1000: within
        expect(tagsOf(await rooms.history('a'))).toEqual(['a3', 'a4']);
        expect(rooms.stats.historyRoomsEvicted).toBe(0);
      });

      it('deletes even the room just written when it alone holds more than maxHistoryBytes', async () => {
        rooms = await make({ historyLimit: 50, historyBytes: 1000, maxHistoryBytes: 400 });
        await sayBytes(rooms, 'a', ['a1'], 200);
        const big = await rooms.append('b', sized('big', 600));
        await expect(rooms.history('a')).resolves.toEqual([]);
        await expect(rooms.history('b')).resolves.toEqual([]);
        expect(rooms.stats.historyRoomsEvicted).toBe(2);
        const after = await rooms.append('b', sized('after', 200));
        expect(compareRecordIds(big.id, after.id)).toBeLessThan(0);
        expect(tagsOf(await rooms.history('b'))).toEqual(['after']);
      });

      it('keeps presence in a room whose history maxHistoryBytes evicted', async () => {
        rooms = await make({ historyLimit: 50, historyBytes: 1000, maxHistoryBytes: 400 });
        await rooms.join('a', 'tab-1', 'ann');
        await sayBytes(rooms, 'a', ['a1'], 200);
        await sayBytes(rooms, 'b', ['b1', 'b2'], 200); // 600 bytes in all: a goes
        await expect(rooms.history('a')).resolves.toEqual([]);
        await expect(rooms.users('a')).resolves.toEqual(['ann']);
        await expect(rooms.rooms()).resolves.toEqual([{ room: 'a', members: 1 }]);
      });

      it('counts trimmed records and evicted rooms in stats', async () => {
        rooms = await make({ historyLimit: 2, historyBytes: 1000, maxRooms: 2 });
        expect(rooms.stats).toMatchObject({ historyRoomsEvicted: 0, historyRecordsTrimmed: 0 });
        await say('a', 3); // one over historyLimit
        expect(rooms.stats).toMatchObject({ historyRoomsEvicted: 0, historyRecordsTrimmed: 1 });
        // One over historyLimit again, and the one left beside it over historyBytes.
        await sayBytes(rooms, 'a', ['big'], 950);
        expect(rooms.stats).toMatchObject({ historyRoomsEvicted: 0, historyRecordsTrimmed: 3 });
        await say('b', 1);
        await say('c', 1); // a is evicted
        expect(rooms.stats).toMatchObject({ historyRoomsEvicted: 1, historyRecordsTrimmed: 3 });
      });

      it('keeps maxHistoryBytes when appending with appendAndSend', async () => {
        rooms = await make({ historyLimit: 50, historyBytes: 1000, maxHistoryBytes: 500 });
        const layer = await target.layerFor(rooms);
        layers.push(layer);
        for (const room of ['a', 'b', 'c']) {
          await rooms.appendAndSend(room, sized(room, 200), layer, 'chat.message');
        }
        await expect(rooms.history('a')).resolves.toEqual([]);
        expect(tagsOf(await rooms.history('b'))).toEqual(['b']);
        expect(tagsOf(await rooms.history('c'))).toEqual(['c']);
        expect(rooms.stats.historyRoomsEvicted).toBe(1);
      });

      it('keeps the same bounds when appending with appendAndSend', async () => {
        rooms = await make({ historyLimit: 50, historyBytes: 1000, maxRooms: 2 });
        const layer = await target.layerFor(rooms);
        layers.push(layer);
        const send = (room: string, tag: string, bytes: number) =>
          rooms.appendAndSend(room, sized(tag, bytes), layer, 'chat.message');
        for (const tag of ['1', '2', '3', '4', '5', '6']) await send('a', tag, 200);
        expect(tagsOf(await rooms.history('a'))).toEqual(['2', '3', '4', '5', '6']);
        await send('b', 'b', 200);
        await send('c', 'c', 200);
        await expect(rooms.history('a')).resolves.toEqual([]);
        expect(rooms.stats).toMatchObject({ historyRoomsEvicted: 1, historyRecordsTrimmed: 1 });
      });
    });

    describe('resends', () => {
      /** What `layer` delivers to a member of `room`, as it arrives. */
      async function member(layer: ChannelLayer, room: string): Promise<ChannelMessage[]> {
        const got: ChannelMessage[] = [];
        const channel = await layer.newChannel('member');
        layer.attach(channel, (message) => void got.push(message));
        await layer.groupAdd(room, channel);
        return got;
      }

      it('stores and sends a message once per resend key, and answers a resend with it', async () => {
        const layer = await target.layerFor(rooms);
        layers.push(layer);
        const got = await member(layer, 'r');
        const send = (key: string) =>
          rooms.appendAndSend('r', { message: 'hi', user: 'ann' }, layer, 'chat.message', key);
        const first = await send('k1');
        const again = await send('k1');
        expect(again.id).toBe(first.id);
        const other = await send('k2');
        expect(other.id).not.toBe(first.id);
        expect((await rooms.history('r')).map((record) => record.id)).toEqual([first.id, other.id]);
        await waitFor(() => got.length === 2);
        expect(got.map((message) => message.id)).toEqual([first.id, other.id]);
        expect(rooms.stats.resendsDeduplicated).toBe(1);
      });

      it('keeps resend keys per room', async () => {
        const layer = await target.layerFor(rooms);
        layers.push(layer);
        const message = { message: 'hi', user: 'ann' };
        const a = await rooms.appendAndSend('a', message, layer, 'chat.message', 'k');
        const b = await rooms.appendAndSend('b', message, layer, 'chat.message', 'k');
        expect(b.id === a.id && b.room === a.room).toBe(false);
        await expect(rooms.history('b')).resolves.toHaveLength(1);
      });

      it('forgets a key after resendWindowMs, and past maxResendIds in its room', async () => {
        rooms = await make({ resendWindowMs: 40, maxResendIds: 2 });
        const layer = await target.layerFor(rooms);
        layers.push(layer);
        const send = (key: string) =>
          rooms.appendAndSend('r', { message: key, user: 'ann' }, layer, 'chat.message', key);
        const k1 = await send('k1');
        await send('k2');
        await send('k3'); // k1 is the oldest of three: forgotten
        expect((await send('k1')).id).not.toBe(k1.id);
        const k3 = await send('k3');
        await new Promise((resolve) => setTimeout(resolve, 60)); // past the window, by any clock
        expect((await send('k3')).id).not.toBe(k3.id);
        expect((await rooms.history('r')).map((record) => record.message)).toEqual([
          'k1',
          'k2',
          'k3',
          'k1',
          'k3',
        ]);
      });
    });

    describe('appendAndSend', () => {
      it('keeps the record and sends it to the room’s group as the given type', async () => {
        const layer = await target.layerFor(rooms);
        layers.push(layer);
        const channel = await layer.newChannel('chat');
        const received: ChannelMessage[] = [];
        layer.attach(channel, (message) => void received.push(message));
        await layer.groupAdd('r', channel);
        const before = Date.now();
        const record = await rooms.appendAndSend(
          'r',
          { message: 'hi', user: 'ann' },
          layer,
          'chat.message',
        );
        expectStamped(record, before);
        await waitFor(() => received.length === 1);
        expect(received).toEqual([{ ...record, type: 'chat.message' }]);
        expect((await rooms.history('r')).at(-1)).toEqual(record);
      });
    });

    describe('enter, exit and sendPresence', () => {
      it('puts a channel in the room’s group and presence, and returns the history after `since`', async () => {
        const layer = await target.layerFor(rooms);
        layers.push(layer);
        const ids = await say('r', 3);
        const socket = await socketOn(layer);
        const history = await rooms.enter('r', socket.channel, 'ann', layer, ids[0]);
        expect(history.map((record) => record.id)).toEqual(ids.slice(1));
        expect(history).toEqual((await rooms.history('r')).slice(1));
        await expect(rooms.users('r')).resolves.toEqual(['ann']);
        await expect(rooms.rooms()).resolves.toEqual([{ room: 'r', members: 1 }]);
        await expect(
          rooms.enter('r2', (await socketOn(layer)).channel, 'bob', layer),
        ).resolves.toEqual([]);
        const record = await rooms.appendAndSend(
          'r',
          { message: 'hi', user: 'ann' },
          layer,
          'chat',
        );
        await waitFor(() => socket.received.length === 1);
        expect(socket.received).toEqual([record]);
      });

      it('takes channels that exit out of the room’s group and presence, together or apart', async () => {
        const layer = await target.layerFor(rooms);
        layers.push(layer);
        const sockets = await Promise.all(['ann', 'bob', 'cy', 'dee'].map(() => socketOn(layer)));
        const names = ['ann', 'bob', 'cy', 'dee'];
        await Promise.all(
          sockets.map((socket, i) => rooms.enter('r', socket.channel, names[i], layer)),
        );
        await Promise.all([
          rooms.exit('r', sockets[0].channel, layer),
          rooms.exit('r', sockets[1].channel, layer),
        ]);
        await rooms.exit('r', sockets[2].channel, layer);
        await expect(rooms.users('r')).resolves.toEqual(['dee']);
        await expect(rooms.rooms()).resolves.toEqual([{ room: 'r', members: 1 }]);
        await rooms.appendAndSend('r', { message: 'hi', user: 'dee' }, layer, 'chat');
        await waitFor(() => sockets[3].received.length === 1);
        expect(sockets.slice(0, 3).map((socket) => socket.received)).toEqual([[], [], []]);
        await rooms.exit('r', sockets[3].channel, layer);
        await expect(rooms.rooms()).resolves.toEqual([]);
      });

      it('tells the room’s group who is in it: the first `names` users, and the count of all', async () => {
        const layer = await target.layerFor(rooms);
        layers.push(layer);
        const ann = await socketOn(layer);
        await rooms.enter('r', ann.channel, 'ann', layer);
        await rooms.enter('r', (await socketOn(layer)).channel, 'bob', layer);
        await expect(rooms.sendPresence('r', layer, 'presence', 1)).resolves.toBe(true);
        await waitFor(() => ann.received.length === 1);
        expect(ann.received).toEqual([{ type: 'presence', room: 'r', users: ['ann'], count: 2 }]);
      });
    });

    describe('presence', () => {
      it('has nobody in a room nobody joined', async () => {
        await expect(rooms.users('empty')).resolves.toEqual([]);
        await expect(rooms.rooms()).resolves.toEqual([]);
      });

      it('lists user names sorted, a user with two tabs once', async () => {
        await rooms.join('r', 'tab-1', 'carl');
        await rooms.join('r', 'tab-2', 'ann');
        await rooms.join('r', 'tab-3', 'bob');
        await rooms.join('r', 'tab-4', 'ann');
        await expect(rooms.users('r')).resolves.toEqual(['ann', 'bob', 'carl']);
      });

      it('keeps a user present until their last tab leaves', async () => {
        await rooms.join('r', 'tab-1', 'ann');
        await rooms.join('r', 'tab-2', 'ann');
        await rooms.join('r', 'tab-3', 'bob');
        await rooms.leave('r', 'tab-1');
        await expect(rooms.users('r')).resolves.toEqual(['ann', 'bob']);
        await rooms.leave('r', 'tab-2');
        await expect(rooms.users('r')).resolves.toEqual(['bob']);
      });

      it('counts one member per socket in rooms(), sorted by room', async () => {
        await rooms.join('zeta', 'z1', 'ann');
        await rooms.join('alpha', 'a1', 'ann');
        await rooms.join('alpha', 'a2', 'ann');
        await rooms.join('alpha', 'a3', 'bob');
        await expect(rooms.rooms()).resolves.toEqual([
          { room: 'alpha', members: 3 },
          { room: 'zeta', members: 1 },
        ]);
      });

      it('lists with a limit only the busiest rooms, ties by name, sorted by name', async () => {
        const sizes: Array<[string, number]> = [
          ['echo', 2],
          ['alpha', 1],
          ['delta', 3],
          ['charlie', 2],
          ['bravo', 3],
          ['foxtrot', 1],
        ];
        for (const [room, members] of sizes) {
          for (let i = 0; i < members; i++) await rooms.join(room, `${room}-${i}`, 'ann');
        }
        await expect(rooms.rooms(3)).resolves.toEqual([
          { room: 'bravo', members: 3 },
          { room: 'charlie', members: 2 },
          { room: 'delta', members: 3 },
        ]);
        await expect(rooms.rooms(1)).resolves.toEqual([{ room: 'bravo', members: 3 }]);
        await expect(rooms.rooms(100)).resolves.toHaveLength(6);
        const all = await rooms.rooms();
        expect(all.map((summary) => summary.room)).toEqual([
          'alpha',
          'bravo',
          'charlie',
          'delta',
          'echo',
          'foxtrot',
        ]);
      });

      it('leaves rooms with only history out of a limited list', async () => {
        await rooms.append('loud', { message: 'nobody here', user: 'ann' });
        await rooms.join('quiet', 'tab-1', 'ann');
        await expect(rooms.rooms(5)).resolves.toEqual([{ room: 'quiet', members: 1 }]);
      });

      it('drops a room from rooms() when its last member leaves, keeping its history', async () => {
        await rooms.append('r', { message: 'kept', user: 'ann' });
        await rooms.join('r', 'tab-1', 'ann');
        await rooms.leave('r', 'tab-1');
        await expect(rooms.rooms()).resolves.toEqual([]);
        await expect(rooms.users('r')).resolves.toEqual([]);
        const history = await rooms.history('r');
        expect(history.map((record) => record.message)).toEqual(['kept']);
      });

      it('does not list a room that only has history', async () => {
        await rooms.append('quiet', { message: 'hello?', user: 'ann' });
        await expect(rooms.rooms()).resolves.toEqual([]);
      });

      it('counts a member that joins twice once', async () => {
        await rooms.join('r', 'tab-1', 'ann');
        await rooms.join('r', 'tab-1', 'ann');
        await expect(rooms.rooms()).resolves.toEqual([{ room: 'r', members: 1 }]);
        await rooms.leave('r', 'tab-1');
        await expect(rooms.rooms()).resolves.toEqual([]);
      });

      it('ignores leaving a member that never joined', async () => {
        await rooms.join('r', 'tab-1', 'ann');
        await rooms.leave('r', 'nobody');
        await rooms.leave('elsewhere', 'tab-1');
        await expect(rooms.users('r')).resolves.toEqual(['ann']);
        await expect(rooms.rooms()).resolves.toEqual([{ room: 'r', members: 1 }]);
      });

      it('keeps presence per room', async () => {
        await rooms.join('a', 'tab-1', 'ann');
        await rooms.join('b', 'tab-2', 'bob');
        await expect(rooms.users('a')).resolves.toEqual(['ann']);
        await expect(rooms.users('b')).resolves.toEqual(['bob']);
      });
    });

    it('closes twice without error', async () => {
      const store = await make();
      await store.join('r', 'tab-1', 'ann');
      await store.close();
      await expect(store.close()).resolves.toBeUndefined();
    });
  });
}

/** `record` is ann's 'hi' in room 'r', with an id and a time from `before` to now. */
function expectStamped(record: ChatRecord, before: number): void {
  expect(record).toEqual({
    type: 'chat',
    message: 'hi',
    room: 'r',
    user: 'ann',
    id: expect.any(String),
    ts: expect.any(Number),
  });
  expect(isRecordId(record.id)).toBe(true);
  expect(record.ts).toBeGreaterThanOrEqual(before);
  expect(record.ts).toBeLessThanOrEqual(Date.now());
}
