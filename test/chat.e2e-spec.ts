import WebSocket from 'ws';
import { ChatTestClient, HandshakeRefused } from '../src/testing/index.js';
import { waitFor } from './channel-layer.conformance.js';
import { RunningChatApp, startChatApp } from './support/chat-app.js';
import { nextOf } from './support/frames.js';

describe('Chat over WebSocket (the seed protocol)', () => {
  let chat: RunningChatApp;

  beforeAll(async () => {
    chat = await startChatApp();
  });

  afterAll(async () => {
    await chat.close();
  });

  it('greets a new socket with exactly the seed frame', async () => {
    const socket = new WebSocket(chat.wsUrl());
    const raw = await new Promise<string>((resolve) =>
      socket.once('message', (data) => resolve(String(data))),
    );
    expect(raw).toBe('{"type":"connection_established","message":"You are connected!"}');
    socket.close();
  });

  it.each(['/ws/socket-server/', '/ws/socket-server'])(
    'serves the seed URL as %s',
    async (path) => {
      const client = await chat.join(path);
      client.send({ message: `via ${path}` });
      await expect(client.nextOfType('chat')).resolves.toMatchObject({
        type: 'chat',
        message: `via ${path}`,
      });
    },
  );

  it('declines permessage-deflate, and a client that offered it chats as usual', async () => {
    // Browsers offer compression; the gateway writes its frames pre-encoded, so it must not agree.
    const socket = new WebSocket(chat.wsUrl(), { perMessageDeflate: true });
    const chatFrame = new Promise<unknown>((resolve) =>
      socket.on('message', (data) => {
        const frame = JSON.parse(String(data)) as { type: string };
        if (frame.type === 'chat') resolve(frame);
      }),
    );
    await new Promise((resolve) => socket.once('open', resolve));
    expect(socket.extensions).toBe('');
    socket.send(JSON.stringify({ message: 'uncompressed' }));
    await expect(chatFrame).resolves.toMatchObject({ type: 'chat', message: 'uncompressed' });
    socket.close();
  });

  it('refuses an unknown path with 404', async () => {
    await expect(ChatTestClient.connect(chat.wsUrl('/ws/elsewhere/'))).rejects.toEqual(
      new HandshakeRefused(404),
    );
  });

  it('sends a message to every socket of the group, the sender included', async () => {
    const [a, b, c] = await Promise.all([chat.join(), chat.join(), chat.join()]);
    b.send({ message: 'hi' });
    for (const client of [a, b, c]) {
      await expect(client.nextOfType('chat')).resolves.toMatchObject({
        type: 'chat',
        message: 'hi',
      });
    }
    await Promise.all([a.close(), b.close(), c.close()]);
  });

  it('delivers each sender’s messages in the order sent, to every receiver', async () => {
    const senders = await Promise.all([chat.join(), chat.join()]);
    const listener = await chat.join();
    // The default rate limit's burst: a sender may send this many at once (see the rate suite).
    const perSender = 40;
    for (let i = 0; i < perSender; i++) {
      senders.forEach((sender, s) => sender.send({ message: `${s}:${i}` }));
    }
    for (const receiver of [...senders, listener]) {
      const seen = [[], []] as number[][];
      for (let n = 0; n < perSender * 2; n++) {
        const frame = await receiver.nextOfType<{ type: string; message: string }>('chat');
        const [s, i] = frame.message.split(':').map(Number);
        seen[s].push(i);
      }
      const expected = Array.from({ length: perSender }, (_, i) => i);
      expect(seen).toEqual([expected, expected]);
    }
    await Promise.all([...senders, listener].map((client) => client.close()));
  });

  it('accepts a seed client frame with extra fields, ignoring them', async () => {
    const client = await chat.join();
    client.send({ message: 'extra', event: 'ignored', data: 1 });
    await expect(client.nextOfType('chat')).resolves.toMatchObject({
      type: 'chat',
      message: 'extra',
    });
    await client.close();
  });

  describe('bad input', () => {
    const cases: Array<[string, string | Buffer, string]> = [
      ['invalid JSON', '{"message": "unterminated', 'invalid_json'],
      ['JSON that is not an object', '["message"]', 'not_an_object'],
      ['JSON null', 'null', 'not_an_object'],
      ['a missing message', '{"text":"hi"}', 'missing_message'],
      ['a non-string message', '{"message":{"nested":true}}', 'invalid_message'],
      ['a null message', '{"message":null}', 'invalid_message'],
      ['an empty frame', '', 'empty_frame'],
      ['a binary frame', Buffer.from('{"message":"hi"}'), 'binary_frame'],
    ];

    it.each(cases)(
      'answers %s with one error frame to the sender only',
      async (_label, frame, code) => {
        const [sender, bystander] = await Promise.all([chat.join(), chat.join()]);
        sender.send(frame);
        const error = await sender.nextOfType<{ type: string; code: string; message: string }>(
          'error',
        );
        expect(error).toEqual({ type: 'error', code, message: expect.any(String) });
        expect(error.message.length).toBeGreaterThan(5);
        // The socket stays open and usable; the bystander saw only the valid message.
        sender.send({ message: 'still here' });
        await expect(sender.nextOfType('chat')).resolves.toMatchObject({
          type: 'chat',
          message: 'still here',
        });
        // An error frame reaching the bystander first would fail this: nextOf stops at either.
        await expect(nextOf(bystander, 'chat', 'error')).resolves.toMatchObject({
          type: 'chat',
          message: 'still here',
        });
        expect(
          sender.pending.filter((frame) => (frame as { type: string }).type === 'error'),
        ).toEqual([]);
        await Promise.all([sender.close(), bystander.close()]);
      },
    );

    it('closes a socket that sends a frame over the size limit with 1009, and only that one', async () => {
      const [big, other] = await Promise.all([chat.join(), chat.join()]);
      big.send({ message: 'x'.repeat(256 * 1024) });
      await expect(big.closedByServer()).resolves.toMatchObject({ code: 1009 });
      other.send({ message: 'unaffected' });
      await expect(other.nextOfType('chat')).resolves.toMatchObject({
        type: 'chat',
        message: 'unaffected',
      });
      await other.close();
    });

    it('closes a socket that sends a text frame of invalid UTF-8 with 1007', async () => {
      const [bad, other] = await Promise.all([chat.join(), chat.join()]);
      bad.socket.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false });
      await expect(bad.closedByServer()).resolves.toMatchObject({ code: 1007 });
      other.send({ message: 'unaffected' });
      await expect(other.nextOfType('chat')).resolves.toMatchObject({
        type: 'chat',
        message: 'unaffected',
      });
      await other.close();
    });

    it('accepts a frame of exactly the size limit', async () => {
      const client = await chat.join();
      const message = 'y'.repeat(1000);
      const overhead = JSON.stringify({ message, pad: '' }).length;
      client.send({ message, pad: ' '.repeat(256 * 1024 - overhead) });
      await expect(client.nextOfType('chat')).resolves.toMatchObject({ type: 'chat', message });
      await client.close();
    });

    it('sends a message of exactly maxMessageBytes (64 KiB) and refuses a longer one', async () => {
      const client = await chat.join();
      const longest = 'é'.repeat(32 * 1024); // two UTF-8 bytes each
      client.send({ message: `${longest}x` });
      await expect(nextOf(client, 'error', 'chat')).resolves.toMatchObject({
        type: 'error',
        code: 'message_too_long',
      });
      client.send({ message: longest });
      await expect(client.nextOfType('chat')).resolves.toMatchObject({ message: longest });
      await client.close();
    });
  });

  it('removes a socket’s channel from the group when it disconnects', async () => {
    const before = new Set(await chat.layer.groupChannels('test'));
    const client = await chat.join();
    const during = await chat.layer.groupChannels('test');
    const added = during.filter((channel) => !before.has(channel));
    expect(added).toHaveLength(1);
    await client.close();
    await waitFor(async () => !(await chat.layer.groupChannels('test')).includes(added[0]));
  });
});
