import {
  ChannelLayer,
  ChannelMessage,
  ChatRecord,
  RoomState,
  RoomStateOptions,
  compareRecordIds,
  isRecordId,
} from '../src';
import { waitFor } from './channel-layer.conformance';

/** How a conformance run builds stores for one implementation. */
export interface RoomStateTarget {
  /** A fresh, empty store with these options, seeing no other store's rooms. The suite closes it. */
  create(options?: RoomStateOptions): Promise<RoomState> | RoomState;
  /** A channel layer as an app would pair with `store`, of the same deployment. The suite closes it. */
  layerFor(store: RoomState): Promise<ChannelLayer> | ChannelLayer;
}

/**
 * The RoomState contract as one suite: history (bounds, order, ids, `since`) and presence (tabs,
 * rooms, counts), run unchanged against every implementation.
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
