import { ChildProcess, execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ChatTestClient } from '../src/testing';

const ROOT = join(__dirname, '..');

/** `npm start` without npm: the compiled app, as production runs it. */
class AppProcess {
  readonly lines: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;

  constructor(env: Record<string, string>) {
    this.child = spawn(process.execPath, [join(ROOT, 'dist', 'main.js')], {
      cwd: ROOT,
      env: { ...process.env, HOST: '127.0.0.1', PORT: '0', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    for (const stream of [this.child.stdout, this.child.stderr]) {
      let rest = '';
      stream?.setEncoding('utf8').on('data', (chunk: string) => {
        const parts = (rest + chunk).split('\n');
        rest = parts.pop() ?? '';
        this.lines.push(...parts.filter((line) => line !== ''));
      });
    }
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => resolve({ code, signal })),
    );
  }

  /** The `ws://` URL, once the app logged that it listens. */
  async listening(timeoutMs = 15_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      for (const line of this.lines) {
        const match = /lobby on http:\/\/([\d.]+:\d+)\//.exec(line);
        if (match) return `ws://${match[1]}/ws/socket-server/`;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`app did not start:\n${this.lines.join('\n')}`);
  }

  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

async function withinMs<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

describe('Graceful shutdown of the compiled app (node dist/main.js)', () => {
  const apps: AppProcess[] = [];

  beforeAll(async () => {
    // The same build `npm start` runs.
    await promisify(execFile)(
      process.execPath,
      [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'],
      { cwd: ROOT },
    );
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
    await expect(ChatTestClient.connect(url, { timeoutMs: 1000 })).rejects.toThrow();
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
