import { InMemoryChannelLayer, InMemoryRoomState, recordBytes } from '../src';
import { describeRoomStateConformance } from './room-state.conformance';

describeRoomStateConformance('InMemoryRoomState', {
  create: (options) => new InMemoryRoomState(options),
  layerFor: () => new InMemoryChannelLayer(),
});

describe('recordBytes', () => {
  it('counts the message’s and the user’s UTF-8 bytes plus 80', () => {
    expect(recordBytes({ message: '', user: '' })).toBe(80);
    expect(recordBytes({ message: 'héllo', user: 'ann' })).toBe(6 + 3 + 80);
    expect(recordBytes({ message: '😀', user: 'zoë' })).toBe(4 + 4 + 80);
  });
});

describe('InMemoryRoomState maxHistoryBytes', () => {
  /** A record of exactly 200 bytes. */
  const record = (message: string) => ({ message: message.padEnd(117, '.'), user: 'ann' });

  it('deletes the least recently written rooms’ history while all rooms hold more', async () => {
    const rooms = new InMemoryRoomState({ historyBytes: 1000, maxHistoryBytes: 1000 });
    expect(recordBytes(record('a1'))).toBe(200);
    await rooms.append('a', record('a1'));
    await rooms.append('a', record('a2'));
    await rooms.append('b', record('b1'));
    await rooms.append('b', record('b2'));
    await rooms.append('c', record('c1')); // 1000 bytes in all: within
    await expect(rooms.history('a')).resolves.toHaveLength(2);
    await rooms.append('c', record('c2')); // 1200: a goes, 800 left
    await expect(rooms.history('a')).resolves.toEqual([]);
    await expect(rooms.history('b')).resolves.toHaveLength(2);
    await expect(rooms.history('c')).resolves.toHaveLength(2);
    expect(rooms.stats.historyRoomsEvicted).toBe(1);
    await rooms.close();
  });

  it('keeps presence in a room whose history it evicted', async () => {
    const rooms = new InMemoryRoomState({ historyBytes: 1000, maxHistoryBytes: 400 });
    await rooms.join('a', 'tab-1', 'ann');
    await rooms.append('a', record('a1'));
    await rooms.append('b', record('b1'));
    await rooms.append('b', record('b2')); // 600 bytes in all: a goes
    await expect(rooms.history('a')).resolves.toEqual([]);
    await expect(rooms.users('a')).resolves.toEqual(['ann']);
    await expect(rooms.rooms()).resolves.toEqual([{ room: 'a', members: 1 }]);
    await rooms.close();
  });
});
