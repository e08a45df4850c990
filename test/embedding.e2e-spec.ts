import { INestApplication, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { AddressInfo } from 'node:net';
import { AuditedChannelLayer } from '../examples/host-app/audited-channel-layer.js';
import { Attendance, HostModule } from '../examples/host-app/host.module.js';
import { ChannelLayer, ChatModule, InMemoryChannelLayer } from '../src/index.js';
import { ChatTestClient, HandshakeRefused } from '../src/testing/index.js';
import { waitFor } from './channel-layer.conformance.js';

async function listen(app: INestApplication): Promise<number> {
  await app.listen(0, '127.0.0.1');
  return (app.getHttpServer().address() as AddressInfo).port;
}

describe('Embedding ChatModule in a host app (examples/host-app)', () => {
  let app: INestApplication;
  let port: number;
  const clients: ChatTestClient[] = [];
  const connect = async (query: string, options = {}): Promise<ChatTestClient> => {
    const client = await ChatTestClient.connect(
      `ws://127.0.0.1:${port}/chat/socket/${query}`,
      options,
    );
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({ imports: [HostModule] }).compile();
    app = moduleRef.createNestApplication({ logger: ['error'] });
    port = await listen(app);
  });

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close()));
  });

  it('keeps the host’s own routes working', async () => {
    const response = await fetch(`http://127.0.0.1:${port}/api/status`);
    await expect(response.json()).resolves.toEqual({ ok: true });
  });

  it('uses the path and the layer class from forRootAsync', async () => {
    expect(app.get(ChannelLayer)).toBeInstanceOf(AuditedChannelLayer);
    await expect(connect('?token=token-ann').then((c) => c.greeted())).resolves.toBeDefined();
    await expect(
      ChatTestClient.connect(`ws://127.0.0.1:${port}/ws/socket-server/`),
    ).rejects.toEqual(new HandshakeRefused(404));
  });

  it.each([
    ['no credentials', ''],
    ['an unknown token', '?token=forged'],
  ])('refuses a handshake with %s with HTTP 401 and no socket', async (_label, query) => {
    await expect(connect(query)).rejects.toEqual(new HandshakeRefused(401));
  });

  it('admits a user by header or cookie, and puts the user on the frames they send', async () => {
    const ann = await connect('', { headers: { authorization: 'Bearer token-ann' } });
    const bob = await connect('', { headers: { cookie: 'theme=dark; session=token-bob' } });
    await Promise.all([ann.greeted(), bob.greeted()]);
    bob.send({ message: 'hello ann' });
    await expect(ann.nextOfType('chat')).resolves.toMatchObject({
      type: 'chat',
      message: 'hello ann',
      user: 'bob',
    });
  });

  it('posts into the room from an HTTP controller', async () => {
    const listener = await connect('?token=token-ann').then((c) => c.greeted());
    const response = await fetch(`http://127.0.0.1:${port}/api/announcements`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ text: 'maintenance at noon' }),
    });
    expect(response.status).toBe(202);
    await expect(listener.nextOfType('chat')).resolves.toMatchObject({
      type: 'chat',
      message: 'maintenance at noon',
      user: 'system',
    });
  });

  it('lets the host strip a message, or reject it with an error frame to the sender only', async () => {
    const sender = await connect('?token=token-ann').then((c) => c.greeted());
    const other = await connect('?token=token-bob').then((c) => c.greeted());
    sender.send({ message: 'buy spam now' });
    await expect(sender.nextOfType('error')).resolves.toEqual({
      type: 'error',
      code: 'message_rejected',
      message: 'that word is not allowed here',
    });
    sender.send({ message: '   ' });
    await expect(sender.nextOfType('error')).resolves.toEqual({
      type: 'error',
      code: 'empty_message',
      message: 'say something',
    });
    sender.send({ message: '  padded  ' });
    await expect(other.nextOfType('chat')).resolves.toMatchObject({
      type: 'chat',
      message: 'padded',
      user: 'ann',
    });
    await expect(sender.nextOfType('chat')).resolves.toMatchObject({
      type: 'chat',
      message: 'padded',
      user: 'ann',
    });
  });

  it('keeps each sender’s order through the async message hook', async () => {
    const sender = await connect('?token=token-bob').then((c) => c.greeted());
    const count = 40; // the default rate limit's burst: more at once would be rate-limited
    for (let i = 0; i < count; i++) sender.send({ message: `n${i}` });
    const got: string[] = [];
    for (let i = 0; i < count; i++)
      got.push((await sender.nextOfType<{ type: string; message: string }>('chat')).message);
    expect(got).toEqual(Array.from({ length: count }, (_, i) => `n${i}`));
  });

  it('tells the host who connected and who left', async () => {
    const attendance = app.get(Attendance);
    const before = attendance.events.length;
    const client = await connect('?token=token-bob').then((c) => c.greeted());
    await waitFor(() => attendance.events.length === before + 1);
    await client.close();
    await waitFor(() => attendance.events.length === before + 2);
    expect(attendance.events.slice(before)).toEqual(['+bob', '-bob']);
  });

  it('closes the layer it built once the app shuts down, after the sockets left', async () => {
    const layer = app.get(ChannelLayer);
    const client = await connect('?token=token-ann').then((c) => c.greeted());
    await app.close();
    await expect(client.closed).resolves.toMatchObject({ code: 1001 });
    await expect(layer.groupChannels('lobby')).rejects.toThrow(/closed/);
  });
});

describe('Several ChatModules in one app', () => {
  const shared = new InMemoryChannelLayer();

  @Module({
    imports: [
      ChatModule.forRoot({ path: '/ws/a', roomPath: '/ws/rooms-a' }),
      ChatModule.forRoot({ path: '/ws/b', roomPath: '/ws/rooms-b', group: 'other' }),
      ChatModule.forRoot({ path: '/ws/c', roomPath: '/ws/rooms-c', layer: shared }),
    ],
  })
  class TwoChatsModule {}

  let app: INestApplication;
  let port: number;

  beforeAll(async () => {
    app = (
      await Test.createTestingModule({ imports: [TwoChatsModule] }).compile()
    ).createNestApplication({ logger: ['error'] });
    port = await listen(app);
  });

  afterAll(async () => {
    await shared.close();
  });

  it('serves each on its own path without crossing messages', async () => {
    const join = (path: string) =>
      ChatTestClient.connect(`ws://127.0.0.1:${port}${path}`).then((c) => c.greeted());
    const [a1, a2, b1, c1] = await Promise.all([
      join('/ws/a'),
      join('/ws/a/'),
      join('/ws/b'),
      join('/ws/c'),
    ]);
    a1.send({ message: 'for a' });
    b1.send({ message: 'for b' });
    await expect(a2.nextOfType('chat')).resolves.toMatchObject({
      type: 'chat',
      message: 'for a',
    });
    await expect(b1.nextOfType('chat')).resolves.toMatchObject({
      type: 'chat',
      message: 'for b',
    });
    await Promise.all([a2.expectSilence(200, 'chat'), c1.expectSilence(200, 'chat')]);
    await expect(a1.nextOfType('chat')).resolves.toMatchObject({ message: 'for a' });
    await a1.expectSilence(100, 'chat');
    await Promise.all([a1, a2, b1, c1].map((client) => client.close()));
  });

  it('does not close a layer it was given, but its sockets leave it', async () => {
    const client = await ChatTestClient.connect(`ws://127.0.0.1:${port}/ws/c`);
    await client.greeted();
    await expect(shared.groupChannels('test')).resolves.toHaveLength(1);
    await app.close();
    await expect(shared.groupChannels('test')).resolves.toEqual([]);
  });
});

describe('Overriding the ChannelLayer in a testing module', () => {
  it('routes the chat through the override', async () => {
    const layer = new AuditedChannelLayer();
    const moduleRef = await Test.createTestingModule({ imports: [ChatModule.forRoot()] })
      .overrideProvider(ChannelLayer)
      .useValue(layer)
      .compile();
    const app = moduleRef.createNestApplication({ logger: ['error'] });
    const port = await listen(app);
    const client = await ChatTestClient.connect(`ws://127.0.0.1:${port}/ws/socket-server/`);
    await client.greeted();
    client.send({ message: 'via override' });
    await expect(client.nextOfType('chat')).resolves.toMatchObject({
      type: 'chat',
      message: 'via override',
    });
    expect(layer.sentByGroup.get('test')).toBe(1);
    await client.close();
    await app.close();
    await layer.close();
  });
});
