import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ChatFrame } from '../src/index.js';
import { ChatTestClient, HandshakeRefused } from '../src/testing/index.js';
import { REDIS_URL, describeWithRedis, uniquePrefix } from './redis-test-support.js';
import { HostProcess, freePort } from './support/hosts.js';

const ROOT = join(import.meta.dirname, '..');

/** examples/host-app compiled as its owner would (`tsc`), into dist-examples/. */
async function buildExamples(): Promise<void> {
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  await promisify(execFile)(process.execPath, [tsc, '-p', 'tsconfig.examples.json'], { cwd: ROOT });
}

type Chat = Required<ChatFrame>;

describeWithRedis('The host app’s events on two processes sharing Redis', () => {
  const apps: HostProcess[] = [];
  const clients: ChatTestClient[] = [];
  let a: HostProcess;
  let b: HostProcess;
  const enter = async (app: HostProcess, query: string): Promise<ChatTestClient> => {
    const client = await ChatTestClient.connect(`ws://127.0.0.1:${app.port}/chat/socket/${query}`, {
      timeoutMs: 10_000,
    });
    clients.push(client);
    return client.greeted();
  };

  beforeAll(async () => {
    await buildExamples();
    const env = { REDIS_URL, REDIS_PREFIX: uniquePrefix('host-events') };
    const entry = join('dist-examples', 'examples', 'host-app', 'main.js');
    a = new HostProcess(ROOT, await freePort(), entry, env);
    b = new HostProcess(ROOT, await freePort(), entry, env);
    apps.push(a, b);
    await Promise.all([a.answering(), b.answering()]);
  }, 120_000);

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close()));
    await Promise.all(apps.map((app) => app.stop()));
  });

  it('carries an event from one process to the room on the other', async () => {
    const ann = await enter(a, '?token=token-ann&room=typing');
    const bob = await enter(b, '?token=token-bob&room=typing');
    bob.send({ type: 'typing' });
    await expect(ann.nextOfType('typing')).resolves.toEqual({ type: 'typing', user: 'bob' });
    await bob.expectSilence(300, 'typing');
  });

  it('reaches every socket of a user on both processes, from HTTP and from a handler', async () => {
    const annOnA = await enter(a, '?token=token-ann&room=one');
    const annOnB = await enter(b, '?token=token-ann&room=two');
    const bob = await enter(b, '?token=token-bob&room=one');
    const response = await fetch(`${a.url}/api/users/u1/notifications`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ text: 'for ann' }),
    });
    expect(response.status).toBe(202);
    const notification = { type: 'notification', text: 'for ann' };
    await expect(annOnA.nextOfType('notification')).resolves.toEqual(notification);
    await expect(annOnB.nextOfType('notification')).resolves.toEqual(notification);
    bob.send({ type: 'whisper', to: 'u1', text: 'psst' });
    const whisper = { type: 'whisper', from: 'u2', text: 'psst' };
    await expect(annOnA.nextOfType('whisper')).resolves.toEqual(whisper);
    await expect(annOnB.nextOfType('whisper')).resolves.toEqual(whisper);
    await bob.expectSilence(300, 'notification');
  });

  it('refuses the staff room with 403 on either process', async () => {
    for (const app of [a, b]) {
      await expect(
        ChatTestClient.connect(
          `ws://127.0.0.1:${app.port}/chat/socket/?token=token-ann&room=staff`,
        ),
      ).rejects.toEqual(new HandshakeRefused(403));
    }
    await expect(enter(b, '?token=token-cid&room=staff')).resolves.toBeInstanceOf(ChatTestClient);
  });

  it('stores and delivers a message resent on the other process after a reconnect once', async () => {
    const bob = await enter(a, '?token=token-bob&room=resend');
    const ann = await enter(a, '?token=token-ann&room=resend');
    ann.send({ message: 'exactly once', id: 'ann-1' });
    const ack = await ann.nextOfType<{ type: string; message_id: string }>('ack');
    const delivered = await bob.nextOfType<Chat>('chat');
    expect(ack).toEqual({ type: 'ack', id: 'ann-1', message_id: delivered.id });
    // The connection drops before the client saw its ack (as it may); it resends on B.
    ann.socket.terminate();
    const again = await enter(b, '?token=token-ann&room=resend');
    again.send({ message: 'exactly once', id: 'ann-1' });
    await expect(again.nextOfType('ack')).resolves.toEqual(ack);
    await bob.expectSilence(500, 'chat');
    const late = await enter(b, '?token=token-cid&room=resend');
    const history = await late.nextOfType<{ type: string; messages: Chat[] }>('history');
    expect(history.messages.map((message) => message.message)).toEqual(['exactly once']);
  });

  it('answers an undeclared type and a handler’s refusal to the sender only', async () => {
    const guest = await enter(b, '?token=token-bob&room=errors');
    const other = await enter(a, '?token=token-ann&room=errors');
    guest.send({ type: 'dance', id: 'd-1' });
    await expect(guest.nextOfType('error')).resolves.toMatchObject({
      code: 'unknown_type',
      id: 'd-1',
    });
    guest.send({ type: 'react', emoji: 'x', message_id: '1-0' });
    await expect(guest.nextOfType('error')).resolves.toMatchObject({ code: 'bad_reaction' });
    await other.expectSilence(300, 'error');
  });
});
