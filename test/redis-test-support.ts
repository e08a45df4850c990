import { ChildProcess, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { freePort } from './support/ports.js';
import { startRedisServer } from './support/redis-processes.js';

/** The Redis the integration tests use; CI points it elsewhere. */
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

const inCi = process.env.CI === 'true';

/** A key prefix no other test (or test run) uses, so tests sharing a Redis never collide. */
export function uniquePrefix(label = 'test'): string {
  return `${label}-${randomBytes(6).toString('hex')}`;
}

/**
 * `describe` when a Redis answers at REDIS_URL. Without one the suite is skipped, loudly; in CI
 * (`CI=true`) it fails instead, since a skipped integration suite there is a hidden failure.
 */
export function describeWithRedis(name: string, body: () => void): void {
  describeIf(redisAnswers(REDIS_URL), `no Redis answers at ${REDIS_URL}`, name, body);
}

/** `describe` when `redis-server` can be started here (for tests that stop and start their own). */
export function describeWithRedisServer(name: string, body: () => void): void {
  describeIf(redisServerPath() !== null, 'no redis-server binary on PATH', name, body);
}

function describeIf(available: boolean, why: string, name: string, body: () => void): void {
  if (available) {
    describe(name, body);
  } else if (inCi) {
    describe(name, () => {
      it('has Redis to run against', () => {
        throw new Error(`${why}; CI=true requires it`);
      });
    });
  } else {
    console.warn(`\n*** SKIPPING "${name}": ${why}. Set REDIS_URL or install Redis. ***\n`);
    describe.skip(name, body);
  }
}

/** Whether something answers Redis' PING at `url`; synchronous, because `describe` is. */
function redisAnswers(url: string): boolean {
  const { hostname, port } = new URL(url);
  const probe = `
    const socket = require('net').connect(${Number(port || 6379)}, ${JSON.stringify(hostname || '127.0.0.1')});
    socket.setTimeout(1500, () => process.exit(1));
    socket.on('error', () => process.exit(1));
    socket.on('connect', () => socket.write('PING\\r\\n'));
    // Any RESP reply (+PONG, or -NOAUTH from a Redis with a password) means a Redis is there.
    socket.on('data', (data) => process.exit(/^[+-]/.test(String(data)) ? 0 : 1));
  `;
  return spawnSync(process.execPath, ['-e', probe], { timeout: 3000 }).status === 0;
}

function redisServerPath(): string | null {
  const found = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim() : null;
}

/** A private redis-server on a free port, for tests that need to stop it, restart it or count. */
export class RedisServerProcess {
  private child: ChildProcess | null = null;

  private constructor(readonly port: number) {}

  /** Starts one on a free port; resolves once it accepts connections. */
  static async start(): Promise<RedisServerProcess> {
    const server = new RedisServerProcess(await freePort());
    await server.restart();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** (Re)starts it on the same port, empty: no snapshot, no append-only file. */
  async restart(): Promise<void> {
    if (this.child) throw new Error('redis-server is already running');
    this.child = await startRedisServer(
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      undefined,
      redisServerPath() ?? 'redis-server',
    );
  }

  /** Stops it (SIGTERM, as an operator would) and waits until it has exited. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = null;
    if (child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    });
  }
}
