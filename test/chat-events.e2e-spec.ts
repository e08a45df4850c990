import { INestApplication, Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { AddressInfo } from 'node:net';
import { HostModule } from '../examples/host-app/host.module.js';
import {
  ChatEvent,
  type ChatEventContext,
  ChatFrame,
  ChatMessageRejected,
  ChatMetrics,
  ChatModule,
  ChatRooms,
  InvalidChatFrame,
} from '../src/index.js';
import { ChatTestClient, HandshakeRefused } from '../src/testing/index.js';
import { UNLIMITED_ADDRESS } from './support/chat-app.js';
import { parseMetrics, sample } from './support/metrics.js';

async function listen(app: INestApplication): Promise<number> {
  await app.listen(0, '127.0.0.1');
  return (app.getHttpServer().address() as AddressInfo).port;
}

/** A client's frames as the tests read them. */
interface Frame {
  type: string;
  [field: string]: unknown;
}

/** The next `count` frames of `client` that are not history or presence. */
async function framesOf(client: ChatTestClient, count: number): Promise<Frame[]> {
  const frames: Frame[] = [];
  while (frames.length < count) {
    const frame = await client.next<Frame>();
    if (frame.type !== 'history' && frame.type !== 'presence') frames.push(frame);
  }
  return frames;
}

describe('The host app’s own events (examples/host-app)', () => {
  let app: INestApplication;
  let port: number;
  const clients: ChatTestClient[] = [];
  const join = async (query: string): Promise<ChatTestClient> => {
    const client = await ChatTestClient.connect(`ws://127.0.0.1:${port}/chat/socket/${query}`);
    clients.push(client);
    return client.greeted();
  };
  const post = (path: string, body: object): Promise<Response> =>
    fetch(`http://127.0.0.1:${port}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({ imports: [HostModule] }).compile();
    app = moduleRef.createNestApplication({ logger: ['error'] });
    port = await listen(app);
  });

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close()));
    await app.close();
  });

  it('tells the rest of the room who is typing, and not the typist', async () => {
    const ann = await join('?token=token-ann&room=typing');
    const bob = await join('?token=token-bob&room=typing');
    ann.send({ type: 'typing' });
    await expect(bob.nextOfType('typing')).resolves.toEqual({ type: 'typing', user: 'ann' });
    await ann.expectSilence(200, 'typing');
  });

  it('sends a reaction to the whole room, and refuses a bad one with the handler’s code', async () => {
    const ann = await join('?token=token-ann&room=react');
    const bob = await join('?token=token-bob&room=react');
    ann.send({ type: 'react', message_id: '1-0', emoji: '🎉' });
    const reaction = { type: 'reaction', message_id: '1-0', emoji: '🎉', user: 'ann' };
    await expect(bob.nextOfType('reaction')).resolves.toEqual(reaction);
    await expect(ann.nextOfType('reaction')).resolves.toEqual(reaction);
    ann.send({ type: 'react', message_id: '1-0', emoji: '💩', id: 'r-1' });
    await expect(ann.nextOfType('error')).resolves.toEqual({
      type: 'error',
      code: 'bad_reaction',
      message: 'react with one of 👍 🎉 ❤️ 😂',
      id: 'r-1',
    });
    await bob.expectSilence(200, 'error');
  });

  it('whispers to every socket of one user, in any room, and to nobody else', async () => {
    const bobHere = await join('?token=token-bob&room=whisper');
    const bobThere = await join('?token=token-bob&room=elsewhere');
    const cid = await join('?token=token-cid&room=whisper');
    const ann = await join('?token=token-ann&room=whisper');
    ann.send({ type: 'whisper', to: 'u2', text: 'psst', id: 'w-1' });
    const whisper = { type: 'whisper', from: 'u1', text: 'psst' };
    await expect(bobHere.nextOfType('whisper')).resolves.toEqual(whisper);
    await expect(bobThere.nextOfType('whisper')).resolves.toEqual(whisper);
    await expect(framesOf(ann, 2)).resolves.toEqual([
      { type: 'whispered', to: 'u2' },
      { type: 'ack', id: 'w-1' },
    ]);
    await cid.expectSilence(200, 'whisper');
  });

  it('notifies a user, or one socket, from an HTTP controller', async () => {
    const first = await join('?token=token-cid&room=notify');
    const second = await join('?token=token-cid&room=notify');
    first.send({ type: 'whoami' });
    const you = await first.nextOfType<Frame>('you');
    expect(you).toMatchObject({ type: 'you', user: 'u3' });
    expect(await post('/api/users/u3/notifications', { text: 'to cid' })).toHaveProperty(
      'status',
      202,
    );
    await expect(first.nextOfType('notification')).resolves.toEqual({
      type: 'notification',
      text: 'to cid',
    });
    await expect(second.nextOfType('notification')).resolves.toEqual({
      type: 'notification',
      text: 'to cid',
    });
    const path = `/api/connections/${String(you.connection_id)}/notifications`;
    expect(await post(path, { text: 'to this tab' })).toHaveProperty('status', 202);
    await expect(first.nextOfType('notification')).resolves.toEqual({
      type: 'notification',
      text: 'to this tab',
    });
    await second.expectSilence(200, 'notification');
  });

  it('refuses a room its hook closes to a user with HTTP 403, and counts it', async () => {
    const metrics = app.get(ChatMetrics);
    const refused = async (): Promise<number> =>
      sample(
        parseMetrics(await metrics.registry.metrics()),
        'chat_handshakes_refused_total{reason="room"}',
      );
    const before = await refused();
    await expect(
      ChatTestClient.connect(`ws://127.0.0.1:${port}/chat/socket/?token=token-ann&room=staff`),
    ).rejects.toEqual(new HandshakeRefused(403));
    expect(await refused()).toBe(before + 1);
    await expect(join('?token=token-cid&room=staff')).resolves.toBeInstanceOf(ChatTestClient);
  });
});

/** Handlers of a test app: one of each way a handler can end. */
@Injectable()
class Handlers {
  @ChatEvent('echo')
  echo(event: ChatEventContext<{ text?: unknown }>): void {
    event.reply({ type: 'echoed', text: event.frame.text ?? null, room: event.room });
  }

  @ChatEvent('slow')
  async slow(event: ChatEventContext): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, 50));
    event.reply({ type: 'slow_done' });
  }

  /** Opened by a test: the `stuck` handler waits for it. */
  static gate = Promise.resolve();

  @ChatEvent('stuck')
  async stuck(event: ChatEventContext): Promise<void> {
    await Handlers.gate;
    event.reply({ type: 'unstuck' });
  }

  @ChatEvent('refuse')
  refuse(): void {
    throw new ChatMessageRejected('not now', 'not_now');
  }

  @ChatEvent('crash')
  crash(): void {
    throw new Error('handler bug');
  }

  @ChatEvent('spoof')
  spoof(event: ChatEventContext): void {
    event.reply({ type: 'chat', message: 'from nobody' });
  }
}

describe('Client events and acknowledged sends', () => {
  let app: INestApplication;
  let port: number;
  let rooms: ChatRooms;
  const clients: ChatTestClient[] = [];
  const join = async (query = ''): Promise<ChatTestClient> => {
    const client = await ChatTestClient.connect(`ws://127.0.0.1:${port}/ws/socket-server/${query}`);
    clients.push(client);
    return client.greeted();
  };

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        ChatModule.forRoot({
          ...UNLIMITED_ADDRESS,
          rateLimit: { messagesPerSecond: 0.1, burst: 10 },
          maxPendingFrames: 5,
        }),
      ],
      providers: [Handlers],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    port = await listen(app);
    rooms = app.get(ChatRooms);
  });

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close()));
    await app.close();
  });

  it('answers an event of a type nobody declared with unknown_type, carrying its id', async () => {
    const client = await join('?room=unknown');
    client.send({ type: 'dance', id: 'd-1' });
    await expect(client.nextOfType('error')).resolves.toEqual({
      type: 'error',
      code: 'unknown_type',
      message: 'no event "dance" here: send {"message": "..."} or a declared type',
      id: 'd-1',
    });
    client.send({ type: 7 });
    await expect(client.nextOfType('error')).resolves.toMatchObject({ code: 'invalid_type' });
    client.send({ message: 'hi', id: 'has a space' });
    await expect(client.nextOfType('error')).resolves.toMatchObject({ code: 'invalid_id' });
  });

  it('handles each sender’s events and messages in the order sent', async () => {
    const client = await join('?room=order');
    client.send({ type: 'slow', id: 's-1' });
    client.send({ type: 'echo', text: 'after slow', id: 'e-1' });
    client.send({ message: 'last', id: 'm-1' });
    const frames = await framesOf(client, 6);
    expect(frames.map((frame) => `${frame.type}:${String(frame.id ?? frame.text ?? '')}`)).toEqual([
      'slow_done:',
      'ack:s-1',
      'echoed:after slow',
      'ack:e-1',
      'chat:' + String(frames[4].id),
      'ack:m-1',
    ]);
    expect(frames[5]).toEqual({ type: 'ack', id: 'm-1', message_id: frames[4].id });
  });

  it('costs a throwing handler only its sender one internal_error; a refusal keeps its code', async () => {
    const sender = await join('?room=throws');
    const bystander = await join('?room=throws');
    sender.send({ type: 'crash', id: 'c-1' });
    await expect(sender.nextOfType('error')).resolves.toEqual({
      type: 'error',
      code: 'internal_error',
      message: 'crash not handled: server error',
      id: 'c-1',
    });
    sender.send({ type: 'refuse' });
    await expect(sender.nextOfType('error')).resolves.toEqual({
      type: 'error',
      code: 'not_now',
      message: 'not now',
    });
    bystander.send({ message: 'still here' });
    await expect(sender.nextOfType('chat')).resolves.toMatchObject({ message: 'still here' });
    await expect(bystander.nextOfType('chat')).resolves.toMatchObject({ message: 'still here' });
    await bystander.expectSilence(100, 'error');
  });

  it('refuses a host frame of the chat’s own types at the call, with a clear error', async () => {
    const client = await join('?room=reserved');
    client.send({ type: 'spoof', id: 'x-1' });
    await expect(client.nextOfType('error')).resolves.toMatchObject({
      code: 'internal_error',
      id: 'x-1',
    });
    for (const type of ['chat', 'presence', 'history', 'error', 'ack', 'connection_established']) {
      await expect(rooms.emit('reserved', { type })).rejects.toThrow(
        new InvalidChatFrame(`the frame type ${type} is the chat's own`),
      );
    }
    await expect(rooms.emit('reserved', { type: '' })).rejects.toThrow(InvalidChatFrame);
    await expect(rooms.sendToUser('u1', { type: 'a b' })).rejects.toThrow(InvalidChatFrame);
    await client.expectSilence(100, 'chat');
  });

  it('rate-limits events like chat messages', async () => {
    const client = await join('?room=rate');
    for (let i = 0; i < 14; i++) client.send({ type: 'echo', text: i });
    const frames = await framesOf(client, 14);
    expect(frames.filter((frame) => frame.type === 'echoed')).toHaveLength(10);
    expect(frames.filter((frame) => frame.code === 'rate_limited')).toHaveLength(4);
  });

  it('acknowledges a chat message once stored and sent, and never stores a resend twice', async () => {
    const sender = await join('?room=resend&name=ann');
    const reader = await join('?room=resend&name=bob');
    sender.send({ message: 'once', id: 'c-42' });
    const chat = await reader.nextOfType<Required<ChatFrame>>('chat');
    const ack = await sender.nextOfType<Frame>('ack');
    expect(ack).toEqual({ type: 'ack', id: 'c-42', message_id: chat.id });
    // The same id again, from the same user after a reconnect: the same ack, nothing new.
    await sender.close();
    const again = await join('?room=resend&name=ann');
    again.send({ message: 'once', id: 'c-42' });
    await expect(again.nextOfType('ack')).resolves.toEqual(ack);
    await reader.expectSilence(200, 'chat');
    const late = await ChatTestClient.connect(
      `ws://127.0.0.1:${port}/ws/socket-server/?room=resend`,
    );
    clients.push(late);
    await late.greeted();
    const history = await late.nextOfType<{ type: string; messages: ChatFrame[] }>('history');
    expect(history.messages.filter((message) => message.message === 'once')).toHaveLength(1);
    // Another user's same id is another message.
    reader.send({ message: 'once', id: 'c-42' });
    const bobs = await reader.nextOfType<Required<ChatFrame>>('chat');
    expect(bobs.id).not.toBe(chat.id);
  });

  it('refuses frames past maxPendingFrames behind a handler stuck for over 5 s', async () => {
    let open = (): void => undefined;
    Handlers.gate = new Promise<void>((resolve) => (open = resolve));
    const client = await join('?room=pending');
    client.send({ type: 'stuck' });
    for (let i = 1; i < 5; i++) client.send({ type: 'echo', text: i, id: `p-${i}` });
    // Five wait; they were taken at once. Past the grace, the sixth on is refused.
    await client.expectSilence(5200, 'echoed');
    for (let i = 5; i < 8; i++) client.send({ type: 'echo', text: i, id: `p-${i}` });
    const refused = await framesOf(client, 3);
    expect(refused.map((frame) => [frame.code, frame.id])).toEqual([
      ['rate_limited', 'p-5'],
      ['rate_limited', 'p-6'],
      ['rate_limited', 'p-7'],
    ]);
    expect(refused[0]?.message).toBe('too many frames waiting: this one was not handled');
    open();
    const handled = await framesOf(client, 1 + 4 * 2);
    expect(handled[0]).toEqual({ type: 'unstuck' });
    expect(handled.filter((frame) => frame.type === 'echoed')).toHaveLength(4);
  }, 15_000);

  it('stores a message sent with one id from two sockets of a user at once only once', async () => {
    const first = await join('?room=twice&name=cid');
    const second = await join('?room=twice&name=cid');
    const reader = await join('?room=twice&name=dan');
    first.send({ message: 'at once', id: 'same' });
    second.send({ message: 'at once', id: 'same' });
    const [a, b] = await Promise.all([
      first.nextOfType<Frame>('ack'),
      second.nextOfType<Frame>('ack'),
    ]);
    expect(a).toEqual(b);
    await expect(reader.nextOfType('chat')).resolves.toMatchObject({ id: a.message_id });
    await reader.expectSilence(200, 'chat');
  });

  it('sends to a connection only by an id the chat gave out', async () => {
    await expect(rooms.sendToConnection('anything', { type: 'note' })).rejects.toThrow(
      InvalidChatFrame,
    );
  });

  it('answers a failed send with an error carrying its id', async () => {
    const client = await join('?room=toolong');
    client.send({ message: 'x'.repeat(70_000), id: 'big-1' });
    await expect(client.nextOfType('error')).resolves.toMatchObject({
      code: 'message_too_long',
      id: 'big-1',
    });
  });

  it('keeps rooms beginning with __ for itself', async () => {
    const client = await ChatTestClient.connect(
      `ws://127.0.0.1:${port}/ws/socket-server/?room=__user.x`,
    );
    clients.push(client);
    await expect(client.nextOfType('error')).resolves.toMatchObject({ code: 'invalid_room' });
    await expect(rooms.emit('__user.x', { type: 'sneak' })).rejects.toThrow(InvalidChatFrame);
  });
});

describe('Declaring events', () => {
  @Injectable()
  class First {
    @ChatEvent('twice')
    handle(): void {}
  }
  @Injectable()
  class Second {
    @ChatEvent('twice')
    handle(): void {}
  }
  @Module({ imports: [ChatModule.forRoot()], providers: [First, Second] })
  class TwiceModule {}

  it('fails the app’s start on two handlers of one type', async () => {
    const moduleRef = await Test.createTestingModule({ imports: [TwiceModule] }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await expect(app.init()).rejects.toThrow(
      'ChatModule: two handlers for the event twice: First.handle and Second.handle',
    );
    await app.close();
  });

  it('refuses a reserved or malformed type at the decorator', () => {
    expect(() => ChatEvent('chat')).toThrow(TypeError);
    expect(() => ChatEvent('has space')).toThrow(TypeError);
  });
});
