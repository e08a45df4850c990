import { ChildProcess, execFile, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort } from './support/ports.js';
import { onRedis, startRedisServer } from './support/redis-processes.js';

const run = promisify(execFile);
const inCi = process.env.CI === 'true';

/** `describe` when `redis-server` and `redis-cli` (7.0 or later) can be run here. */
export function describeWithRedisCluster(name: string, body: () => void): void {
  const found = spawnSync('sh', ['-c', 'command -v redis-server && command -v redis-cli'], {
    encoding: 'utf8',
  });
  if (found.status === 0) {
    describe(name, body);
  } else if (inCi) {
    describe(name, () => {
      it('has redis-server and redis-cli to start a cluster with', () => {
        throw new Error('no redis-server or redis-cli on PATH; CI=true requires them');
      });
    });
  } else {
    console.warn(`\n*** SKIPPING "${name}": no redis-server or redis-cli on PATH. ***\n`);
    describe.skip(name, body);
  }
}

/** The same check, for tests of other topologies started from the same binaries (Sentinel). */
export const describeWithRedisBinaries = describeWithRedisCluster;

/** One node of a {@link RedisClusterProcess}. */
export interface ClusterNodeProcess {
  readonly port: number;
  /** The cluster bus port (`cluster-port`), chosen free too rather than `port + 10000`. */
  readonly busPort: number;
  child: ChildProcess | null;
}

/** What a test asks of its cluster. */
export interface RedisClusterSettings {
  /** @default 3 */
  readonly primaries?: number;
  /** @default 1 */
  readonly replicasPerPrimary?: number;
  /**
   * `cluster-node-timeout`: how long a primary may be unreachable before its replica takes over.
   * @default 1000
   */
  readonly nodeTimeoutMs?: number;
}

/**
 * A real Redis Cluster of local `redis-server`s on free ports (primaries with replicas, made by
 * `redis-cli --cluster create`), empty and without persistence, its files under a temp dir.
 * One per test file: starting takes about two seconds. `stop()` kills every node and removes
 * the dir.
 */
export class RedisClusterProcess {
  private constructor(
    readonly nodes: readonly ClusterNodeProcess[],
    private readonly dir: string,
    private readonly nodeTimeoutMs: number,
  ) {}

  /** Starts the nodes, creates the cluster and waits until every node says `cluster_state:ok`. */
  static async start(settings: RedisClusterSettings = {}): Promise<RedisClusterProcess> {
    const primaries = settings.primaries ?? 3;
    const replicas = settings.replicasPerPrimary ?? 1;
    const nodeTimeoutMs = settings.nodeTimeoutMs ?? 1000;
    const dir = await mkdtemp(join(tmpdir(), 'redis-cluster-'));
    const nodes: ClusterNodeProcess[] = [];
    const ports = new Set<number>();
    while (ports.size < 2 * primaries * (1 + replicas)) ports.add(await freePort());
    const free = [...ports];
    for (let i = 0; i < primaries * (1 + replicas); i++) {
      nodes.push({ port: free[2 * i], busPort: free[2 * i + 1], child: null });
    }
    const cluster = new RedisClusterProcess(nodes, dir, nodeTimeoutMs);
    try {
      await Promise.all(nodes.map((node) => cluster.startNode(node)));
      await run('redis-cli', [
        '--cluster',
        'create',
        ...nodes.map((node) => `127.0.0.1:${node.port}`),
        '--cluster-replicas',
        String(replicas),
        '--cluster-yes',
      ]);
      await cluster.waitUntilHealthy(primaries, nodes.length);
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  /** Seed nodes for a store's `hosts.cluster`: every node, as `127.0.0.1:<port>`. */
  get seeds(): string[] {
    return this.nodes.map((node) => `127.0.0.1:${node.port}`);
  }

  /** `redis+cluster://` URL of the cluster, with two seeds. */
  get url(): string {
    return `redis+cluster://${this.seeds.slice(0, 2).join(',')}`;
  }

  /** The ports of the nodes that are primaries now, with the slot ranges each owns. */
  async primaries(): Promise<Array<{ port: number; slots: Array<[number, number]> }>> {
    const live = this.nodes.find((node) => node.child !== null);
    if (!live) throw new Error('no node is running');
    const slots = await this.on(live.port, (redis) => redis.cluster('SLOTS'));
    const byPort = new Map<number, Array<[number, number]>>();
    for (const [low, high, [, port]] of slots) {
      const ranges = byPort.get(port) ?? [];
      ranges.push([low, high]);
      byPort.set(port, ranges);
    }
    return [...byPort].map(([port, ranges]) => ({ port, slots: ranges }));
  }

  /**
   * The ports of the shard that owns `slot`: its primary first, then its replicas (from `CLUSTER
   * NODES`: `CLUSTER SLOTS` leaves out a replica it does not count as synced yet).
   */
  async shardOf(slot: number): Promise<number[]> {
    const primary = await this.primaryOf(slot);
    const live = this.nodes.find((node) => node.child !== null);
    if (!live) throw new Error('no node is running');
    const lines = String(await this.on(live.port, (redis) => redis.cluster('NODES')))
      .trim()
      .split('\n')
      .map((line) => line.split(' '));
    const portOf = (address: string): number => Number(address.split('@')[0].split(':').pop());
    const primaryId = lines.find((fields) => portOf(fields[1]) === primary)?.[0];
    const replicas = lines
      .filter((fields) => fields[3] === primaryId && !fields[2].includes('fail'))
      .map((fields) => portOf(fields[1]));
    return [primary, ...replicas];
  }

  /** The primary whose slots hold `slot`. */
  async primaryOf(slot: number): Promise<number> {
    for (const primary of await this.primaries()) {
      if (primary.slots.some(([low, high]) => slot >= low && slot <= high)) return primary.port;
    }
    throw new Error(`no primary owns slot ${slot}`);
  }

  /**
   * Moves `slot`, keys and all, to the primary at `to`, as `redis-cli --cluster reshard` moves
   * each slot: IMPORTING on the target, MIGRATING on the source, MIGRATE of its keys, then NODE
   * on the target, the source and the other primaries. The source unsubscribes the slot's shard
   * channels' subscribers then.
   */
  async moveSlot(slot: number, to: number): Promise<void> {
    const from = await this.primaryOf(slot);
    const idOf = async (port: number): Promise<string> =>
      String(await this.on(port, (redis) => redis.call('CLUSTER', 'MYID')));
    const [fromId, toId] = await Promise.all([idOf(from), idOf(to)]);
    await this.on(to, (redis) => redis.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', fromId));
    await this.on(from, (redis) => redis.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', toId));
    for (;;) {
      const keys = (await this.on(from, (redis) =>
        redis.call('CLUSTER', 'GETKEYSINSLOT', slot, 100),
      )) as string[];
      if (keys.length === 0) break;
      await this.on(from, (redis) =>
        redis.call('MIGRATE', '127.0.0.1', to, '', 0, 5000, 'KEYS', ...keys),
      );
    }
    const others = (await this.primaries()).map(({ port }) => port);
    for (const port of [to, from, ...others.filter((port) => port !== to && port !== from)]) {
      await this.on(port, (redis) => redis.call('CLUSTER', 'SETSLOT', slot, 'NODE', toId));
    }
  }

  /** Calls made of `command` on the node at `port`, from `INFO commandstats`. */
  async calls(port: number, command: string): Promise<number> {
    const info = await this.on(port, (redis) => redis.info('commandstats'));
    const line = new RegExp(`^cmdstat_${command.toLowerCase()}:calls=(\\d+)`, 'm').exec(info);
    return line ? Number(line[1]) : 0;
  }

  /** Resets every running node's `INFO commandstats`. */
  async resetStats(): Promise<void> {
    await Promise.all(
      this.nodes
        .filter((node) => node.child !== null)
        .map((node) => this.on(node.port, (redis) => redis.config('RESETSTAT'))),
    );
  }

  /**
   * Kills the node at `port` with SIGKILL, as a crash would, and resolves once the cluster is
   * whole again without it (a replica promoted in its place, `cluster_state:ok` everywhere).
   */
  async kill(port: number): Promise<void> {
    const node = this.nodes.find((each) => each.port === port);
    const child = node?.child;
    if (!node || !child) throw new Error(`no node runs on ${port}`);
    node.child = null;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  }

  /** Resolves once no running node still counts `port` as a primary and the cluster is ok. */
  async waitForFailover(port: number, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const primaries = await this.primaries().catch(() => []);
      const ok = await this.allOk().catch(() => false);
      if (ok && primaries.length > 0 && !primaries.some((primary) => primary.port === port)) return;
      if (Date.now() > deadline) throw new Error(`no replica took over from ${port} in time`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Kills every node and removes the cluster's files. Safe twice. */
  async stop(): Promise<void> {
    await Promise.all(
      this.nodes.map(async (node) => {
        const child = node.child;
        node.child = null;
        if (!child || child.exitCode !== null || child.signalCode !== null) return;
        await new Promise<void>((resolve) => {
          child.once('exit', () => resolve());
          child.kill('SIGKILL');
        });
      }),
    );
    await rm(this.dir, { recursive: true, force: true });
  }

  /** Runs `call` on a short-lived plain connection to the node at `port`. */
  async on<T>(port: number, call: (redis: Redis) => Promise<T>): Promise<T> {
    return onRedis(port, call);
  }

  private async startNode(node: ClusterNodeProcess): Promise<void> {
    const args = [
      '--port',
      String(node.port),
      '--bind',
      '127.0.0.1',
      '--cluster-enabled',
      'yes',
      '--cluster-port',
      String(node.busPort),
      '--cluster-config-file',
      join(this.dir, `nodes-${node.port}.conf`),
      '--cluster-node-timeout',
      String(this.nodeTimeoutMs),
      // A replica takes over however long it was out of touch: tests kill primaries at will.
      '--cluster-replica-validity-factor',
      '0',
      '--dir',
      this.dir,
      '--dbfilename',
      `dump-${node.port}.rdb`,
      '--save',
      '',
      '--appendonly',
      'no',
    ];
    node.child = await startRedisServer(args);
  }

  /** Every running node says `cluster_state:ok`. */
  private async allOk(): Promise<boolean> {
    const running = this.nodes.filter((node) => node.child !== null);
    const states = await Promise.all(
      running.map((node) => this.on(node.port, (redis) => redis.cluster('INFO'))),
    );
    return states.every((info) => String(info).includes('cluster_state:ok'));
  }

  private async waitUntilHealthy(primaries: number, total: number): Promise<void> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const ready = await this.allOk().catch(() => false);
      if (ready) {
        const known = await Promise.all(
          this.nodes.map((node) =>
            this.on(node.port, async (redis) => {
              const nodes = String(await redis.cluster('NODES'))
                .trim()
                .split('\n');
              const replication = await redis.info('replication');
              const synced =
                replication.includes('role:master') ||
                replication.includes('master_link_status:up');
              return nodes.length === total && synced;
            }),
          ),
        );
        const owners = await this.primaries();
        if (known.every(Boolean) && owners.length === primaries) return;
      }
      if (Date.now() > deadline) throw new Error('the cluster did not become healthy in time');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
