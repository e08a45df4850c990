import { Logger } from '@nestjs/common';
import { Redis, RedisOptions } from 'ioredis';
import { ChannelLayerUnavailable } from '../channel-layer/channel-layer.errors.js';
import { LuaScript } from './lua-script.js';
import { errorText } from '../error-text.js';

/** One Redis host: a URL, ioredis options, or a client the caller owns. */
export type RedisHost = string | RedisOptions | Redis;

/** What a shard tells the store that owns it. */
export interface RedisShardEvents {
  /** A message on a subscribed topic. */
  message?(topic: string, payload: string): void;
  /**
   * Both connections are back after an outage and subscriptions are restored. Redis may have
   * lost everything meanwhile, and wakes published then were missed.
   */
  recovered(shard: RedisShard): void;
}

/** How a shard connects; filled from its store's options. */
export interface RedisShardSettings {
  readonly index: number;
  readonly host: RedisHost;
  /** Milliseconds a command, or the first connection, may take before failing. */
  readonly timeoutMs: number;
  readonly events: RedisShardEvents;
  readonly logger: Logger;
}

const SUBSCRIBE_CHUNK = 1000;

/**
 * One Redis host: a command connection and a subscriber duplicated from it (pub/sub needs its
 * own). Fails fast while Redis is away, with `ChannelLayerUnavailable`, rather than queueing
 * commands it may never send or sending them twice; restores its subscriptions itself when Redis
 * is back.
 */
export class RedisShard {
  readonly index: number;
  readonly client: Redis;
  readonly subscriber: Redis;
  /** Human-readable address, for errors and logs. */
  readonly address: string;
  /**
   * The Redis server and database this shard's keys live in (`host:port/db`, a socket path or a
   * sentinel group, then the database): two shards with the same `server` can be reached by one
   * script. Spelled as configured, so `localhost` and `127.0.0.1` count as different.
   */
  readonly server: string;
  /** Whether the shard created `client` (and so must close it). The subscriber is always ours. */
  private readonly ownsClient: boolean;
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
    if (isClient(host)) {
      this.client = host;
      this.ownsClient = false;
      if (host.status === 'wait') host.connect().catch(() => undefined);
    } else {
      const defaults: RedisOptions = {
        ...failFast,
        connectTimeout: Math.max(timeoutMs, 1000),
        retryStrategy: (attempt) => Math.min(50 * attempt, 1000),
      };
      this.client =
        typeof host === 'string' ? new Redis(host, defaults) : new Redis({ ...defaults, ...host });
      this.ownsClient = true;
    }
    // We restore subscriptions ourselves: ioredis only remembers those that succeeded.
    this.subscriber = this.client.duplicate({ ...failFast, autoResubscribe: false });
    this.address = `${this.client.options.host ?? '?'}:${this.client.options.port ?? '?'}`;
    this.server = serverOf(this.client.options);
    this.clientLink = new Link(this.client);
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
      void this.resubscribe().then((done) => {
        this.subscriptionsRestored = done;
        this.recoverIfReady();
      });
    };
    const onClientClose = (): void => {
      if (this.clientLink.lost()) this.logger.warn(`Redis ${this.address} went away`);
      this.outage ||= this.clientLink.everReady;
    };
    const onSubscriberClose = (): void => {
      this.subscriberLink.lost();
      this.subscriptionsRestored = false;
      this.outage ||= this.subscriberLink.everReady;
    };
    this.recoverIfReady = () => {
      if (!this.outage || !this.subscriptionsRestored) return;
      if (this.client.status !== 'ready' || this.subscriber.status !== 'ready') return;
      this.outage = false;
      this.logger.log(`Redis ${this.address} is back; restoring subscriptions and memberships`);
      events.recovered(this);
    };
    // Errors surface as rejected commands and close events; without a listener ioredis would
    // print each reconnect failure.
    const ignore = (): void => undefined;
    this.client.on('ready', onClientReady);
    this.client.on('close', onClientClose);
    if (this.ownsClient) this.client.on('error', ignore);
    this.subscriber.on('message', onMessage);
    this.subscriber.on('ready', onSubscriberReady);
    this.subscriber.on('close', onSubscriberClose);
    this.subscriber.on('error', ignore);
    this.detachListeners = () => {
      this.client.off('ready', onClientReady);
      this.client.off('close', onClientClose);
      // Our own clients keep `ignore`: a close racing the connect's ready check still errors.
    };
  }

  /** Runs a Lua script by SHA, loading it if Redis does not know it (yet, or any more). */
  async run(
    script: LuaScript,
    keys: readonly string[],
    args: ReadonlyArray<string | number>,
  ): Promise<unknown> {
    if (this.client.status !== 'ready') await this.clientLink.usable(this.timeoutMs, this.address);
    try {
      return await this.client.evalsha(script.sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!(error instanceof Error && error.message.startsWith('NOSCRIPT')))
        throw this.failure(error);
    }
    try {
      return await this.client.eval(script.lua, keys.length, ...keys, ...args);
    } catch (error) {
      throw this.failure(error);
    }
  }

  /** Runs one plain command on the command connection, with the same failure rules. */
  async command<T>(call: (client: Redis) => Promise<T>): Promise<T> {
    if (this.client.status !== 'ready') await this.clientLink.usable(this.timeoutMs, this.address);
    try {
      return await call(this.client);
    } catch (error) {
      throw this.failure(error);
    }
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
    if (this.subscriber.status === 'ready')
      this.subscriber.unsubscribe(topic).catch(() => undefined);
  }

  /** UNLINKs every key matching `pattern`, SCANning so a big keyspace doesn't block Redis. */
  async deleteMatching(pattern: string): Promise<void> {
    let cursor = '0';
    do {
      const [next, keys] = await this.command((client) =>
        client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000),
      );
      if (keys.length > 0) await this.command((client) => client.unlink(...keys));
      cursor = next;
    } while (cursor !== '0');
  }

  /** Disconnects the subscriber, and the command connection when the shard created it. */
  async close(): Promise<void> {
    this.detachListeners();
    this.topics.clear();
    const closing = [disconnect(this.subscriber)];
    if (this.ownsClient) closing.push(disconnect(this.client));
    await Promise.all(closing);
  }

  private async subscribeNow(topics: string[]): Promise<void> {
    if (this.subscriber.status !== 'ready') {
      await this.subscriberLink.usable(this.timeoutMs, this.address);
    }
    try {
      await this.subscriber.subscribe(...topics);
    } catch (error) {
      throw this.failure(error);
    }
  }

  /** Subscribes to every wanted topic again; false when Redis went away meanwhile. */
  private async resubscribe(): Promise<boolean> {
    const topics = [...this.topics.keys()];
    for (let at = 0; at < topics.length; at += SUBSCRIBE_CHUNK) {
      try {
        await this.subscribeNow(topics.slice(at, at + SUBSCRIBE_CHUNK));
      } catch {
        return false; // Gone again; the next 'ready' retries.
      }
    }
    return true;
  }

  private failure(error: unknown): Error {
    if (error instanceof ChannelLayerUnavailable) return error;
    // A reply from a working Redis is a bug or misuse, and says so; anything else means we
    // could not reach it (closed, timed out, loading, failing over).
    if (
      error instanceof Error &&
      error.name === 'ReplyError' &&
      !/^(LOADING|BUSY|MASTERDOWN|READONLY|TRYAGAIN|CLUSTERDOWN)\b/.test(error.message)
    ) {
      return error;
    }
    const reason = errorText(error);
    return new ChannelLayerUnavailable(`Redis ${this.address} is unavailable: ${reason}`, {
      cause: error,
    });
  }
}

/** Connection state of one client: has it ever been ready, and is it recovering now? */
class Link {
  everReady: boolean;
  private down = false;
  private readonly firstReady: Promise<void>;

  constructor(private readonly redis: Redis) {
    this.everReady = redis.status === 'ready';
    this.firstReady = this.everReady
      ? Promise.resolve()
      : new Promise((resolve) => redis.once('ready', () => resolve()));
  }

  /** Marks it ready. */
  up(): void {
    this.everReady = true;
    this.down = false;
  }

  /** Marks it lost; true on the first close after being ready. */
  lost(): boolean {
    if (!this.everReady || this.down) return false;
    this.down = true;
    return true;
  }

  /**
   * Resolves when the client can take a command. A store used right after construction waits
   * for its first connection, briefly; once connected, an outage fails at once.
   */
  usable(timeoutMs: number, address: string): Promise<void> {
    if (this.redis.status === 'ready') return Promise.resolve();
    const unavailable = new ChannelLayerUnavailable(
      `Redis ${address} is unavailable (${this.redis.status})`,
    );
    if (this.everReady || this.redis.status === 'end') return Promise.reject(unavailable);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(unavailable), timeoutMs);
      void this.firstReady.then(() => {
        clearTimeout(timer);
        resolve();
      });
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

function isClient(host: RedisHost): host is Redis {
  return (
    typeof host === 'object' &&
    host !== null &&
    typeof (host as Redis).duplicate === 'function' &&
    typeof (host as Redis).evalsha === 'function'
  );
}

function disconnect(redis: Redis): Promise<void> {
  if (redis.status === 'end') return Promise.resolve();
  if (redis.status === 'reconnecting' || redis.status === 'close') {
    // No socket to wait for: stopping the reconnect timer is all there is to do.
    redis.disconnect();
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    // 'end' follows once the socket is closed; don't let a stuck socket hold close() forever.
    const timer = setTimeout(resolve, 1000);
    timer.unref();
    redis.once('end', () => {
      clearTimeout(timer);
      resolve();
    });
    redis.disconnect();
  });
}
