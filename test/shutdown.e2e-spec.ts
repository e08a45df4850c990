import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { ChatTestClient, HandshakeRefused } from '../src/testing/index.js';
import { AppProcess, buildApp, withinMs } from './support/app-process.js';

describe('Graceful shutdown of the compiled app (node dist/main.js)', () => {
  const apps: AppProcess[] = [];

  beforeAll(async () => {
    // The same build `npm start` runs.
    await buildApp();
  }, 120_000);

  afterEach(() => apps.forEach((app) => app.kill()));

  function start(env: Record<string, string> = {}): AppProcess {
    const app = new AppProcess(env);
    apps.push(app);
    return app;
  }

  it('on SIGTERM closes sockets with 1001, refuses new ones, and exits 0 after the grace period', async () => {
    const app = start({ LOG_FORMAT: 'json', LOG_LEVEL: 'verbose' });
    const url = await app.listening();
    const [a, b, stuck] = await Promise.all(
      [0, 1, 2].map(async () => (await ChatTestClient.connect(url)).greeted()),
    );
    const secret = `secret-${randomUUID()}`;
    a.send({ message: secret });
    await expect(b.nextOfType('chat')).resolves.toMatchObject({ type: 'chat', message: secret });
    // A client that never answers the close frame: shutdown waits 2 s for it, no longer.
    (stuck.socket as unknown as { _socket: Socket })._socket.pause();

    const started = Date.now();
    app.signal('SIGTERM');
    for (const client of [a, b]) {
      await expect(withinMs(client.closed, 1500, 'close')).resolves.toMatchObject({
        code: 1001,
      });
    }
    // During the grace period a new handshake is refused, not left hanging.
    await expect(ChatTestClient.connect(url, { timeoutMs: 1000 })).rejects.toEqual(
      new HandshakeRefused(503),
    );
    await expect(withinMs(app.exited, 6000, 'exit')).resolves.toEqual({
      code: 0,
      signal: null,
    });
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(1900); // the stuck client got its grace period
    expect(took).toBeLessThan(6000);

    // Every log line is JSON; the message's text is in none of them.
    const records = app.lines.map((line) => JSON.parse(line) as { level: string; message: string });
    expect(records.map((record) => record.message)).toContain('SIGTERM: closing connections');
    expect(app.lines.some((line) => line.includes(secret))).toBe(false);
  }, 30_000);

  it('on SIGINT (Ctrl-C) exits 0 too', async () => {
    const app = start();
    const client = await ChatTestClient.connect(await app.listening()).then((c) => c.greeted());
    app.signal('SIGINT');
    await expect(withinMs(client.closed, 1500, 'close')).resolves.toMatchObject({ code: 1001 });
    await expect(withinMs(app.exited, 4000, 'exit')).resolves.toEqual({ code: 0, signal: null });
  }, 30_000);
});
