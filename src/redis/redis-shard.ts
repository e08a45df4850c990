import { Logger } from '@nestjs/common';
import { Cluster, Redis, RedisCommander, RedisOptions } from 'ioredis';
import { ChannelLayerUnavailable } from '../channel-layer/channel-layer.errors.js';
import { LuaScript } from './lua-script.js';
import { Link, disconnect } from './redis-link.js';
import { errorText } from '../error-text.js';

/** One Redis host: a URL, ioredis options, or a client the caller owns. */
export type RedisHost = string | RedisOptions | Redis;

/** The commands a shard's command connection takes: a `Redis`'s or a `Cluster`'s. */
export type RedisCommands = RedisCommander;

/**
 * Where a shard of a Redis Cluster is: one bucket of the store's names, all of whose keys and
 * shard channels carry `tag`, so they share `slot`. The buckets of one store share `client`.
 */
export interface ClusterBucket {
  readonly client: Cluster;
  /** The bucket's hash tag, `{b<i>.<j>}`. */
  readonly tag: string;
  readonly slot: number;
  /** Names the cluster in `server` and logs (its seed nodes as configured). */
  readonly label: string;
}

/** What a shard tells the store that owns it. */
export interface RedisShardEvents {
  /** A message on a subscribed topic. */
  message?(topic: string, payload: string): void;
  /**
   * Both connections are back after an outage and subscriptions are restored. Redis may have
   * lost everything meanwhile, and wakes published then were missed.
   */
  recovered(shard: RedisShard): void;
  /**
   * The subscriber's connection closed: messages on its topics stop reaching this process until
   * `recovered`. Told once per outage.
   */
  lost?(shard: RedisShard): void;
}

/** How a shard connects; filled from its store's options. */
export interface RedisShardSettings {
  readonly index: number;
  /** A plain Redis (a single server, or one of client-side shards), or a cluster's bucket. */
  readonly host: RedisHost | ClusterBucket;
  /** Milliseconds a command, or the first connection, may take before failing. */
  readonly timeoutMs: number;
  readonly events: RedisShardEvents;
  readonly logger: Logger;
}

const SUBSCRIBE_CHUNK = 1000;

/**
 * One Redis host, or one bucket of a Redis Cluster: a command connection and a subscriber (pub/sub
 * needs its own). Fails fast while Redis is away, with `ChannelLayerUnavailable`, rather than
 * queueing commands it may never send or sending them twice; restores its subscriptions itself
 * when Redis is back.
 *
 * On a cluster the command connection is the store's `Cluster` (shared by its buckets, routed by
 * slot); scripts PUBLISH as SPUBLISH ({@link LuaScript.sharded}) and the subscriber is a plain
 * connection to the primary that owns the bucket's slot, SSUBSCRIBEd to the bucket's shard
 * channels: a message is carried by that shard only, never by the cluster bus. When the primary
 * goes (failover), the subscriber reconnects to whichever node the cluster's slot map names then,
 * subscribes again and the store hears `recovered`, as after a single server's outage.
 */
export class RedisShard {
  readonly index: number;
  /** The command connection: a `Redis`, or the cluster's `Cluster`. */
  readonly client: RedisCommands;
  readonly subscriber: Redis;
  /** Human-readable address, for errors and logs. */
  readonly address: string;
  /**
   * The Redis server and database this shard's keys live in (`host:port/db`, a socket path or a
   * sentinel group, then the database; or `cluster:<seeds>/<bucket tag>`): two shards with the
   * same `server` can be reached by one script. Spelled as configured, so `localhost` and
   * `127.0.0.1` count as different.
   */
  readonly server: string;
  /** The bucket's hash tag on a cluster, for its keys and shard channels; '' on a plain Redis. */
  readonly tag: string;
  /** Whether the shard created `client` (and so must close it). The subscriber is always ours. */
  private readonly ownsClient: boolean;
  private readonly connection: Redis | Cluster;
  private readonly bucket: ClusterBucket | null;
  /** Topics this shard should be subscribed to → the SUBSCRIBE in flight, or null once done. */
  private readonly topics = new Map<string, Promise<void> | null>();
  private readonly clientLink: Link;
  private readonly subscriberLink: Link;
  private readonly timeoutMs: number;
  private readonly logger: Logger;
  private readonly detachListeners: () => void;
  private readonly recoverIfReady: () => void;
  /** A connection was lost since both were last ready. */
  private outage = false;
  private subscriptionsRestored = false;
  /** `lost` was told and `recovered` not yet. */
  private deliveriesLost = false;
  /** The cluster's connection to the slot's primary, as last looked up. */
  private ownerNode: Redis | undefined;
  private closing = false;
  /** Counts the subscriber's closes, so a resubscribe finishing late cannot speak for a newer one. */
  private subscriberGeneration = 0;
  /** Topics whose subscription Redis confirmed, with the `subscriberGeneration` it was in. */
  private readonly confirmed = new Map<string, number>();
  private resubscribeTimer?: NodeJS.Timeout;

  constructor(settings: RedisShardSettings) {
    const { host, timeoutMs, events } = settings;
    this.index = settings.index;
    this.timeoutMs = timeoutMs;
    this.logger = settings.logger;
    const failFast: RedisOptions = {
      // Refuse commands while disconnected instead of queueing them for later.
      enableOfflineQueue: false,
      // Fail in-flight commands when the connection drops, and never resend them: a groupSend
      // must be reported as failed, not delivered twice.
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      commandTimeout: timeoutMs,
      lazyConnect: false,
    };
    if (isClusterBucket(host)) {
      this.bucket = host;
      this.connection = host.client;
      this.ownsClient = false; // The store's RedisShards closes the cluster.
      this.tag = host.tag;
      // A plain connection to the slot's primary, made when first needed (a store that never
      // subscribes opens none); retargeted on every reconnect, so it follows a failover.
      this.subscriber = new Redis({
        ...host.client.options.redisOptions,
        ...failFast,
        ...this.ownerOfSlot(),
        lazyConnect: true,
        autoResubscribe: false,
        connectTimeout: Math.max(timeoutMs, 1000),
        retryStrategy: (attempt) => {
          this.retarget();
          return Math.min(50 * attempt, 1000);
        },
      });
      this.address = `cluster ${host.label} slot ${host.slot}`;
      this.server = `cluster:${host.label}/${host.tag}`;
    } else {
      this.bucket = null;
      this.tag = '';
      let client: Redis;
      if (isClient(host)) {
        client = host;
        this.ownsClient = false;
        if (host.status === 'wait') host.connect().catch(() => undefined);
      } else {
        const defaults: RedisOptions = {
          ...failFast,
          // Commands issued in one turn of the event loop leave in one write: a crowd's joins
          // and a burst's sends cost Redis one read and this process one system call.
          enableAutoPipelining: true,
          connectTimeout: Math.max(timeoutMs, 1000),
          retryStrategy: (attempt) => Math.min(50 * attempt, 1000),
        };
        client =
          typeof host === 'string'
            ? new Redis(host, defaults)
            : new Redis({ ...defaults, ...host });
        this.ownsClient = true;
      }
      this.connection = client;
      // We restore subscriptions ourselves: ioredis only remembers those that succeeded.
      this.subscriber = client.duplicate({
        ...failFast,
        autoResubscribe: false,
        enableAutoPipelining: false,
      });
      this.address = `${client.options.host ?? '?'}:${client.options.port ?? '?'}`;
      this.server = serverOf(client.options);
    }
    this.client = this.connection as RedisCommands;
    this.clientLink = new Link(this.connection);
    this.subscriberLink = new Link(this.subscriber);

    const onMessage = (topic: string, payload: string): void => events.message?.(topic, payload);
    // The two connections drop and come back independently; the store hears once both are
    // back, so what it restores can use either.
    const onClientReady = (): void => {
      this.clientLink.up();
      this.recoverIfReady();
    };
    const onSubscriberReady = (): void => {
      this.subscriberLink.up();
      this.restoreSubscriptions();
    };
    const onClientClose = (): void => {
      if (this.clientLink.lost()) this.logger.warn(`Redis ${this.address} went away`);
      this.outage ||= this.clientLink.everReady;
    };
    const onSubscriberClose = (): void => {
      if (
        this.bucket &&
        !this.closing &&
        this.subscriberLink.everReady &&
        !this.subscriberLink.isDown
      ) {
        this.logger.warn(`Redis ${this.address} went away (its subscriber's primary)`);
      }
      this.subscriberLink.lost();
      this.subscriberGeneration++;
      this.subscriptionsRestored = false;
      if (this.subscriberLink.everReady && !this.closing && !this.deliveriesLost) {
        this.deliveriesLost = true;
        events.lost?.(this);
      }
      this.outage ||= this.subscriberLink.everReady;
    };
    this.recoverIfReady = () => {
      if (!this.outage || !this.subscriptionsRestored) return;
      if (this.connection.status !== 'ready' || this.subscriber.status !== 'ready') return;
      this.outage = false;
      this.deliveriesLost = false;
      this.logger.log(`Redis ${this.address} is back; restoring subscriptions and memberships`);
      events.recovered(this);
    };
    // Errors surface as rejected commands and close events; without a listener ioredis would
    // print each reconnect failure.
    const ignore = (): void => undefined;
    // When the cluster moves the bucket's slot (resharding), the old primary unsubscribes us from
    // the slot's shard channels and keeps the connection open; ioredis reports the reply it did
    // not ask for as an error. The slots, asked for at once, name the new primary.
    const onSubscriberError = (error: Error): void => {
      if (this.bucket && error.message.includes('sunsubscribe')) {
        this.bucket.client.refreshSlotsCache();
      }
    };
    const onSlotsRefreshed = (): void => this.followSlot();
    this.connection.on('ready', onClientReady);
    this.connection.on('close', onClientClose);
    if (this.ownsClient) this.connection.on('error', ignore);
    this.bucket?.client.on('refresh', onSlotsRefreshed);
    this.subscriber.on(this.bucket ? 'smessage' : 'message', onMessage);
    this.subscriber.on('ready', onSubscriberReady);
    this.subscriber.on('close', onSubscriberClose);
    this.subscriber.on('error', onSubscriberError);
    this.detachListeners = () => {
      this.connection.off('ready', onClientReady);
      this.connection.off('close', onClientClose);
      this.bucket?.client.off('refresh', onSlotsRefreshed);
      // Our own clients keep their error listener: a close racing the connect's ready check
      // still errors.
    };
  }

  /**
   * The life of the subscriber's connection (its count of closes) in which Redis confirmed the
   * subscription to `topic`, if that is its current life; -1 otherwise. While the value holds,
   * every message published on `topic` since the confirmation reached this process; when it
   * changes, some may have been missed.
   */
  subscribedIn(topic: string): number {
    const generation = this.confirmed.get(topic);
    return generation === this.subscriberGeneration ? generation : -1;
  }

  /** Runs a Lua script by SHA, loading it if Redis does not know it (yet, or any more). */
  async run(
    script: LuaScript,
    keys: readonly string[],
    args: ReadonlyArray<string | number>,
  ): Promise<unknown> {
    if (this.connection.status !== 'ready') {
      await this.clientLink.usable(this.timeoutMs, this.address);
    }
    const chosen = this.bucket ? script.sharded : script;
    if (this.bucket) await this.ownerConnected();
    try {
      return await this.client.evalsha(chosen.sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!(error instanceof Error && error.message.startsWith('NOSCRIPT')))
        throw this.failure(error);
    }
    try {
      return await this.client.eval(chosen.lua, keys.length, ...keys, ...args);
    } catch (error) {
      throw this.failure(error);
    }
  }

  /** Runs one plain command on the command connection, with the same failure rules. */
  async command<T>(call: (client: RedisCommands) => Promise<T>): Promise<T> {
    if (this.connection.status !== 'ready') {
      await this.clientLink.usable(this.timeoutMs, this.address);
    }
    if (this.bucket) await this.ownerConnected();
    try {
      return await call(this.client);
    } catch (error) {
      throw this.failure(error);
    }
  }

  /** PUBLISHes (SPUBLISHes on a cluster) `payload` on `topic`, a topic of this shard. */
  async publish(topic: string, payload: string): Promise<void> {
    await this.command((client) =>
      this.bucket ? client.spublish(topic, payload) : client.publish(topic, payload),
    );
  }

  /**
   * Subscribes to `topic`; resolves once Redis confirmed it, so a publish after that is received.
   * While Redis is away it rejects, but the topic stays wanted and is subscribed on reconnect.
   */
  subscribe(topic: string): Promise<void> {
    const pending = this.topics.get(topic);
    if (pending !== undefined) return pending ?? Promise.resolve();
    const subscribing = this.subscribeNow([topic]).finally(() => {
      if (this.topics.get(topic) === subscribing) this.topics.set(topic, null);
    });
    this.topics.set(topic, subscribing);
    return subscribing;
  }

  /** Stops wanting `topic`. Best effort: a lost UNSUBSCRIBE only costs ignored messages. */
  unsubscribe(topic: string): void {
    if (!this.topics.delete(topic)) return;
    this.confirmed.delete(topic);
    if (this.subscriber.status !== 'ready') return;
    const done = this.bucket
      ? this.subscriber.sunsubscribe(topic)
      : this.subscriber.unsubscribe(topic);
    done.catch(() => undefined);
  }

  /**
   * UNLINKs every key matching `pattern`, SCANning so a big keyspace doesn't block Redis. On a
   * cluster, every primary's keys (so one bucket's call clears the whole cluster's).
   */
  async deleteMatching(pattern: string): Promise<void> {
    if (this.connection instanceof Cluster) {
      const primaries = this.connection.nodes('master');
      await Promise.all(primaries.map((node) => this.deleteOn(node, pattern, true)));
      return;
    }
    await this.deleteOn(this.client, pattern, false);
  }

  /** Disconnects the subscriber, and the command connection when the shard created it. */
  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.resubscribeTimer);
    this.detachListeners();
    this.topics.clear();
    this.confirmed.clear();
    const closing = [disconnect(this.subscriber)];
    if (this.ownsClient) closing.push(disconnect(this.connection));
    await Promise.all(closing);
  }

  private async deleteOn(node: RedisCommands, pattern: string, oneByOne: boolean): Promise<void> {
    let cursor = '0';
    do {
      const [next, keys] = await this.command(() =>
        node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000),
      );
      if (keys.length > 0) {
        // A cluster refuses a multi-key command across slots, even on one node.
        if (oneByOne) await this.command(() => Promise.all(keys.map((key) => node.unlink(key))));
        else await this.command(() => node.unlink(...keys));
      }
      cursor = next;
    } while (cursor !== '0');
  }

  private async subscribeNow(topics: string[]): Promise<void> {
    if (this.bucket && this.subscriber.status === 'wait') {
      // First use: once the cluster knows its slots, connect to the slot's primary.
      if (this.connection.status !== 'ready') {
        await this.clientLink.usable(this.timeoutMs, this.address);
      }
      this.retarget();
      this.subscriber.connect().catch(() => undefined);
    }
    if (this.subscriber.status !== 'ready') {
      await this.subscriberLink.usable(this.timeoutMs, this.address);
    }
    const generation = this.subscriberGeneration;
    try {
      if (this.bucket) await this.subscriber.ssubscribe(...topics);
      else await this.subscriber.subscribe(...topics);
    } catch (error) {
      throw this.failure(error);
    }
    if (generation !== this.subscriberGeneration) return;
    for (const topic of topics) if (this.topics.has(topic)) this.confirmed.set(topic, generation);
  }

  /**
   * Subscribes to every wanted topic again, then lets the store recover. A connection lost
   * meanwhile retries on its next 'ready'; a SUBSCRIBE refused or timed out on a connection that
   * stays up retries shortly, since no 'ready' would come to retry it.
   */
  private restoreSubscriptions(): void {
    clearTimeout(this.resubscribeTimer);
    const generation = this.subscriberGeneration;
    void this.resubscribe().then((done) => {
      if (this.closing || generation !== this.subscriberGeneration) return;
      this.subscriptionsRestored = done;
      if (done) this.recoverIfReady();
      else if (this.subscriber.status === 'ready') {
        this.resubscribeTimer = setTimeout(() => this.restoreSubscriptions(), 200).unref();
      }
    });
  }

  /** Subscribes to every wanted topic again; false when one SUBSCRIBE failed. */
  private async resubscribe(): Promise<boolean> {
    const topics = [...this.topics.keys()];
    for (let at = 0; at < topics.length; at += SUBSCRIBE_CHUNK) {
      try {
        await this.subscribeNow(topics.slice(at, at + SUBSCRIBE_CHUNK));
      } catch {
        return false;
      }
    }
    return true;
  }

  /**
   * Waits (up to the timeout) while the cluster's connection to the slot's primary is still being
   * made: a cluster that queues nothing refuses a command for a node not ready yet as if its
   * connection had closed, though Redis never saw it. A lost connection refuses at once.
   */
  private async ownerConnected(): Promise<void> {
    const bucket = this.bucket as ClusterBucket;
    const key = bucket.client.slots[bucket.slot]?.[0];
    if (!key) return;
    let node = this.ownerNode;
    if (!node || node.status === 'end' || nodeKey(node) !== key) {
      node = bucket.client.nodes('master').find((each) => nodeKey(each) === key);
      this.ownerNode = node;
    }
    if (!node || node.status === 'ready') return;
    if (node.status === 'wait') node.connect().catch(() => undefined);
    if (!['wait', 'connecting', 'connect'].includes(node.status)) return;
    const connecting = node;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        connecting.off('ready', done);
        connecting.off('close', done);
        resolve();
      };
      const timer = setTimeout(done, this.timeoutMs);
      connecting.once('ready', done);
      connecting.once('close', done);
    });
  }

  /** The primary the cluster's slot map names for this bucket's slot, if it knows one. */
  private ownerOfSlot(): { host: string; port: number } | Record<string, never> {
    const key = this.bucket?.client.slots[this.bucket.slot]?.[0];
    if (!key) return {};
    const colon = key.lastIndexOf(':');
    return { host: key.slice(0, colon), port: Number(key.slice(colon + 1)) };
  }

  /**
   * Reconnects the subscriber when the slot's primary is no longer the node it is connected to
   * (the slot moved, or a replica took over while the connection stayed up): it then subscribes
   * again on the new primary, as after any drop, and what the layer restores follows.
   */
  private followSlot(): void {
    if (this.closing || this.subscriber.status !== 'ready') return;
    const owner = this.ownerOfSlot();
    if (!('host' in owner)) return;
    const { host, port } = this.subscriber.options;
    if (host === owner.host && port === owner.port) return;
    this.logger.warn(
      `Redis ${this.address} moved to ${owner.host}:${owner.port}; its subscriber follows`,
    );
    this.subscriber.disconnect(true);
  }

  /**
   * Points the subscriber at the slot's primary before it (re)connects. When that is still the
   * node it lost, asks the cluster for its slots again: after a failover they name the replica
   * that took over.
   */
  private retarget(): void {
    const owner = this.ownerOfSlot();
    if (!('host' in owner)) return;
    const options = this.subscriber.options;
    if (options.host === owner.host && options.port === owner.port) {
      this.bucket?.client.refreshSlotsCache();
      return;
    }
    options.host = owner.host;
    options.port = owner.port;
  }

  private failure(error: unknown): Error {
    if (error instanceof ChannelLayerUnavailable) return error;
    // A reply from a working Redis is a bug or misuse, and says so; anything else means we
    // could not reach it (closed, timed out, loading, failing over). A MOVED or ASK that ioredis
    // hands back (its pipeline mixed commands that ran with redirected ones, after a failover or
    // a slot's move) did not run either.
    if (
      error instanceof Error &&
      error.name === 'ReplyError' &&
      !/^(LOADING|BUSY|MASTERDOWN|READONLY|TRYAGAIN|CLUSTERDOWN|MOVED|ASK)\b/.test(error.message)
    ) {
      return error;
    }
    // A cluster may be failing over: learn the new primaries now rather than at the next tick.
    this.bucket?.client.refreshSlotsCache();
    const reason = errorText(error);
    return new ChannelLayerUnavailable(`Redis ${this.address} is unavailable: ${reason}`, {
      cause: error,
    });
  }
}

function serverOf(options: RedisOptions): string {
  const sentinels = options.sentinels ?? [];
  const where =
    sentinels.length > 0
      ? `sentinel:${options.name ?? ''}@${sentinels.map((at) => `${at.host}:${at.port}`).join(',')}`
      : (options.path ?? `${options.host ?? 'localhost'}:${options.port ?? 6379}`);
  return `${where}/${options.db ?? 0}`;
}

function nodeKey(node: Redis): string {
  return `${node.options.host ?? ''}:${node.options.port ?? ''}`;
}

function isClusterBucket(host: RedisHost | ClusterBucket): host is ClusterBucket {
  return typeof host === 'object' && 'tag' in host && host.client instanceof Cluster;
}

function isClient(host: RedisHost): host is Redis {
  return (
    typeof host === 'object' &&
    host !== null &&
    typeof (host as Redis).duplicate === 'function' &&
    typeof (host as Redis).evalsha === 'function'
  );
}
