import { ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './support/ports.js';
import { onRedis, startRedisServer } from './support/redis-processes.js';

/** One process of a {@link RedisSentinelGroup}. */
interface GroupProcess {
  readonly port: number;
  child: ChildProcess | null;
}

/**
 * A real Sentinel setup of local processes on free ports: a primary, a replica of it and three
 * sentinels watching it as `mymaster` (quorum 2, down after `downAfterMs`), empty and without
 * persistence, files under a temp dir. `stop()` kills everything and removes the dir.
 */
export class RedisSentinelGroup {
  /** The name the sentinels know the primary by. */
  readonly name = 'mymaster';

  private constructor(
    readonly data: readonly GroupProcess[],
    readonly sentinels: readonly GroupProcess[],
    private readonly dir: string,
  ) {}

  /** Starts it; resolves once every sentinel knows the replica and the other sentinels. */
  static async start(downAfterMs = 1000): Promise<RedisSentinelGroup> {
    const dir = await mkdtemp(join(tmpdir(), 'redis-sentinel-'));
    const ports = new Set<number>();
    while (ports.size < 5) ports.add(await freePort());
    const [primary, replica, ...watchers] = [...ports];
    const group = new RedisSentinelGroup(
      [primary, replica].map((port) => ({ port, child: null })),
      watchers.map((port) => ({ port, child: null })),
      dir,
    );
    try {
      const common = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir];
      await group.spawn(group.data[0], [...common, '--port', String(primary)]);
      await group.spawn(group.data[1], [
        ...common,
        '--port',
        String(replica),
        '--replicaof',
        '127.0.0.1',
        String(primary),
      ]);
      await Promise.all(
        group.sentinels.map(async (sentinel) => {
          const config = join(dir, `sentinel-${sentinel.port}.conf`);
          await writeFile(
            config,
            [
              `port ${sentinel.port}`,
              'bind 127.0.0.1',
              `dir ${dir}`,
              `sentinel monitor ${group.name} 127.0.0.1 ${primary} 2`,
              `sentinel down-after-milliseconds ${group.name} ${downAfterMs}`,
              `sentinel failover-timeout ${group.name} 10000`,
              `sentinel parallel-syncs ${group.name} 1`,
              '',
            ].join('\n'),
          );
          await group.spawn(sentinel, [config, '--sentinel']);
        }),
      );
      await group.waitUntilWatched();
    } catch (error) {
      await group.stop();
      throw error;
    }
    return group;
  }

  /** The store's `hosts` for it: ioredis' sentinel options. */
  get hosts(): { sentinels: Array<{ host: string; port: number }>; name: string } {
    return {
      sentinels: this.sentinels.map((sentinel) => ({ host: '127.0.0.1', port: sentinel.port })),
      name: this.name,
    };
  }

  /** `redis+sentinel://` URL of it. */
  get url(): string {
    const at = this.sentinels.map((sentinel) => `127.0.0.1:${sentinel.port}`).join(',');
    return `redis+sentinel://${at}/${this.name}`;
  }

  /** The port of the primary the sentinels name now. */
  async primary(): Promise<number> {
    for (const sentinel of this.sentinels) {
      if (!sentinel.child) continue;
      const reply = await this.on(sentinel.port, (redis) =>
        redis.call('SENTINEL', 'get-master-addr-by-name', this.name),
      ).catch(() => null);
      if (Array.isArray(reply)) return Number(reply[1]);
    }
    throw new Error('no sentinel answers');
  }

  /** Kills the data node on `port` with SIGKILL, as a crash would. */
  async kill(port: number): Promise<void> {
    const node = this.data.find((each) => each.port === port);
    const child = node?.child;
    if (!node || !child) throw new Error(`nothing runs on ${port}`);
    node.child = null;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  }

  /** Kills everything and removes the files. Safe twice. */
  async stop(): Promise<void> {
    await Promise.all(
      [...this.data, ...this.sentinels].map(async (each) => {
        const child = each.child;
        each.child = null;
        if (!child || child.exitCode !== null || child.signalCode !== null) return;
        await new Promise<void>((resolve) => {
          child.once('exit', () => resolve());
          child.kill('SIGKILL');
        });
      }),
    );
    await rm(this.dir, { recursive: true, force: true });
  }

  private on<T>(port: number, call: (redis: Redis) => Promise<T>): Promise<T> {
    return onRedis(port, call);
  }

  private async spawn(process: GroupProcess, args: string[]): Promise<void> {
    process.child = await startRedisServer(args, /Ready to accept connections|Sentinel ID is/);
  }

  private async waitUntilWatched(): Promise<void> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const states = await Promise.all(
        this.sentinels.map((sentinel) =>
          this.on(sentinel.port, async (redis) => {
            const replicas = (await redis.call('SENTINEL', 'replicas', this.name)) as unknown[];
            const peers = (await redis.call('SENTINEL', 'sentinels', this.name)) as unknown[];
            return replicas.length === 1 && peers.length === 2;
          }).catch(() => false),
        ),
      );
      const synced = await this.on(this.data[1].port, (redis) => redis.info('replication'));
      if (states.every(Boolean) && synced.includes('master_link_status:up')) return;
      if (Date.now() > deadline) throw new Error('the sentinels did not settle in time');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
