import { WebSocket } from 'ws';
import { ChatFrame, HistoryFrame } from '../src/index.js';
import { ChatTestClient } from '../src/testing/index.js';
import { RunningChatApp, startChatApp } from './support/chat-app.js';
import { waitFor } from './channel-layer.conformance.js';
import { presenceOf } from './support/frames.js';

type Chat = Required<ChatFrame>;

describe('Rooms, names, presence, history and resume', () => {
  let chat: RunningChatApp;

  beforeAll(async () => {
    chat = await startChatApp({ historyLimit: 5, presenceDelayMs: 20 });
  });

  afterAll(async () => {
    await chat.close();
  });

  /** Joins and takes the greeting and the history frame. */
  async function enter(path: string): Promise<{ client: ChatTestClient; history: HistoryFrame }> {
    const client = await chat.join(path);
    const history = await client.next<HistoryFrame>();
    expect(history.type).toBe('history');
    return { client, history };
  }

  it('keeps rooms apart, by ?room= and by /ws/chat/<room>/', async () => {
    const { client: a1 } = await enter('/ws/socket-server/?room=alpha&name=a1');
    const { client: a2 } = await enter('/ws/chat/alpha/?name=a2');
    const { client: b1 } = await enter('/ws/chat/beta?name=b1');
    a1.send({ message: 'in alpha' });
    await expect(a2.nextOfType('chat')).resolves.toMatchObject({
      message: 'in alpha',
      room: 'alpha',
    });
    b1.send({ message: 'in beta' });
    await expect(b1.nextOfType('chat')).resolves.toMatchObject({
      message: 'in beta',
      room: 'beta',
    });
    await a2.expectSilence(150, 'chat');
    await expect(a1.nextOfType('chat')).resolves.toMatchObject({ message: 'in alpha' });
    await a1.expectSilence(50, 'chat');
    await Promise.all([a1.close(), a2.close(), b1.close()]);
  });

  it('puts the room on the default seed URL in group test', async () => {
    const { client, history } = await enter('/ws/socket-server/');
    expect(history.room).toBe('test');
    client.send({ message: 'seed' });
    await expect(client.nextOfType('chat')).resolves.toMatchObject({ room: 'test' });
    await client.close();
  });

  it.each([
    ['an invalid room in the query', '/ws/socket-server/?room=no%20spaces', 'invalid_room'],
    ['an invalid room in the path', '/ws/chat/bad!room/', 'invalid_room'],
    ['a room name of 100 characters', `/ws/chat/${'r'.repeat(100)}/`, 'invalid_room'],
    ['an empty name', '/ws/socket-server/?name=', 'invalid_name'],
    ['a name of 33 characters', `/ws/socket-server/?name=${'n'.repeat(33)}`, 'invalid_name'],
    ['a name with a control character', '/ws/socket-server/?name=a%07b', 'invalid_name'],
    ['a since that is no id', '/ws/socket-server/?since=yesterday', 'invalid_since'],
  ])('refuses %s with an error frame and close 1008', async (_label, path, code) => {
    const client = await ChatTestClient.connect(chat.wsUrl(path));
    await expect(client.next()).resolves.toMatchObject({ type: 'error', code });
    await expect(client.closedByServer()).resolves.toMatchObject({ code: 1008 });
  });

  it('stamps chat frames with room, user, an increasing id and a time', async () => {
    const { client, history } = await enter('/ws/chat/stamps/?name=ann');
    expect(history.user).toBe('ann');
    const before = Date.now();
    client.send({ message: 'one' });
    client.send({ message: 'two' });
    const one = await client.nextOfType<Chat>('chat');
    const two = await client.nextOfType<Chat>('chat');
    expect(one).toMatchObject({ type: 'chat', message: 'one', room: 'stamps', user: 'ann' });
    expect(one.id).toMatch(/^\d+-\d+$/);
    expect(one.ts).toBeGreaterThanOrEqual(before);
    expect(one.ts).toBeLessThanOrEqual(Date.now());
    const [ms1, seq1] = one.id.split('-').map(Number);
    const [ms2, seq2] = two.id.split('-').map(Number);
    expect(ms2 > ms1 || (ms2 === ms1 && seq2 > seq1)).toBe(true);
    await client.close();
  });

  it('gives a socket with no name a generated one, the same on its frames', async () => {
    const { client, history } = await enter('/ws/chat/guests/');
    expect(history.user).toMatch(/^guest-[a-z]{4}$/);
    client.send({ message: 'hello' });
    await expect(client.nextOfType('chat')).resolves.toMatchObject({ user: history.user });
    await client.close();
  });

  it('tells every member who is present on join and leave, a user with two tabs once', async () => {
    const { client: ann } = await enter('/ws/chat/presence/?name=ann');
    await presenceOf(ann, ['ann']);
    const { client: bob } = await enter('/ws/chat/presence/?name=bob');
    const { client: bob2 } = await enter('/ws/chat/presence/?name=bob');
    await expect(presenceOf(ann, ['ann', 'bob'])).resolves.toMatchObject({
      room: 'presence',
      count: 2,
    });
    await presenceOf(bob2, ['ann', 'bob']);
    await bob.close();
    await bob2.close();
    await presenceOf(ann, ['ann']);
    await ann.close();
  });

  it('spaces presence frames by the sockets in all rooms, and tells the final counts', async () => {
    // The app's presenceDelayMs is 20: a room's announcements are at least 20 ms apart per 100
    // sockets of the app when each is sent (about 5,000 writes a second at most, in all rooms).
    const spacingMs = (sockets: number): number => 20 * Math.max(1, Math.ceil(sockets / 100));
    const rooms = ['crowd-a', 'crowd-b'];
    const seen = new Map(rooms.map((room) => [room, [] as { at: number; count: number }[]]));
    const observers = await Promise.all(
      rooms.map(async (room) => {
        const observer = new WebSocket(chat.wsUrl(`/ws/chat/${room}/?name=observer`));
        observer.on('message', (data: Buffer) => {
          const frame = JSON.parse(data.toString()) as { type: string; count?: number };
          const at = performance.now();
          if (frame.type === 'presence') seen.get(room)?.push({ at, count: frame.count ?? 0 });
        });
        await new Promise((resolve) => observer.once('open', resolve));
        return observer;
      }),
    );
    const crowd = 200; // per room
    // All at once: the rooms fill as fast as the app takes handshakes.
    await Promise.all(
      Array.from({ length: crowd }, (_, i) =>
        rooms.map((room) => chat.join(`/ws/chat/${room}/?name=member${i}`)),
      ).flat(),
    );
    await waitFor(() => rooms.every((room) => seen.get(room)?.at(-1)?.count === crowd + 1), 10_000);
    for (const [room, frames] of seen) {
      const other = seen.get(rooms.find((name) => name !== room) as string) ?? [];
      let required = 0;
      for (let i = 1; i < frames.length; i++) {
        // Both rooms only grow, so the other's last count seen before the previous frame is at
        // most what it had when this one was sent.
        const before = frames[i - 1].at;
        const otherCount = other.filter((frame) => frame.at < before).at(-1)?.count ?? 0;
        required += spacingMs(frames[i].count + otherCount);
      }
      // Summed over the ramp, the observer's lag in reading a frame only counts at both ends:
      // 25 ms covers it. With each room spaced by its own size only, the frames come about twice
      // as often as this requires.
      expect(frames.at(-1)!.at - frames[0].at).toBeGreaterThanOrEqual(required - 25);
    }
    observers.forEach((observer) => observer.close());
  });

  it('drops a socket that vanished without a close frame from presence', async () => {
    const { client: ann } = await enter('/ws/chat/vanish/?name=ann');
    const { client: ghost } = await enter('/ws/chat/vanish/?name=ghost');
    await presenceOf(ann, ['ann', 'ghost']);
    ghost.socket.terminate();
    await presenceOf(ann, ['ann']);
    await ann.close();
  });

  it('gives a joiner the room’s last messages, oldest first, bounded by historyLimit', async () => {
    const { client: talker } = await enter('/ws/chat/history/?name=talker');
    for (let i = 1; i <= 8; i++) talker.send({ message: `m${i}` });
    for (let i = 1; i <= 8; i++) await talker.nextOfType('chat');
    const { client: late, history } = await enter('/ws/chat/history/?name=late');
    expect(history.messages.map((m) => m.message)).toEqual(['m4', 'm5', 'm6', 'm7', 'm8']);
    expect(history.messages.every((m) => m.room === 'history' && m.user === 'talker')).toBe(true);
    await Promise.all([talker.close(), late.close()]);
  });

  it('resumes with ?since= after a dropped connection: every missed message, once', async () => {
    const { client: talker } = await enter('/ws/chat/resume/?name=talker');
    const { client: reader } = await enter('/ws/chat/resume/?name=reader');
    talker.send({ message: 'seen' });
    const seen = await reader.nextOfType<Chat>('chat');
    reader.socket.terminate();
    await reader.closed;
    for (const message of ['missed 1', 'missed 2', 'missed 3']) talker.send({ message });
    for (let i = 0; i < 4; i++) await talker.nextOfType('chat');
    const { client: back, history } = await enter(`/ws/chat/resume/?name=reader&since=${seen.id}`);
    expect(history.messages.map((m) => m.message)).toEqual(['missed 1', 'missed 2', 'missed 3']);
    talker.send({ message: 'live again' });
    await expect(back.nextOfType('chat')).resolves.toMatchObject({ message: 'live again' });
    await Promise.all([talker.close(), back.close()]);
  });

  it('lists active rooms with their member counts at GET /api/rooms', async () => {
    const { client: x } = await enter('/ws/chat/listed-x/?name=x');
    const { client: y1 } = await enter('/ws/chat/listed-y/?name=y');
    const { client: y2 } = await enter('/ws/chat/listed-y/?name=y');
    const rooms = (await (await fetch(`${chat.httpUrl}/api/rooms`)).json()) as Array<{
      room: string;
      members: number;
    }>;
    expect(rooms).toEqual(
      expect.arrayContaining([
        { room: 'listed-x', members: 1 },
        { room: 'listed-y', members: 2 },
      ]),
    );
    await Promise.all([x.close(), y1.close(), y2.close()]);
  });
});
