import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import {
  ChannelLayer,
  ChannelLayerOptions,
  ChannelLayerStats,
  ChannelMessage,
  ChannelReceiver,
  ReceiveOptions,
} from './channel-layer.js';
import {
  ChannelFull,
  ChannelLayerClosed,
  InvalidChannelLayerInput,
} from './channel-layer.errors.js';
import {
  CapacityTable,
  assertChannelName,
  assertGroupName,
  capacityOf,
  compileCapacities,
  isValidGroupName,
  nonLocalName,
  positiveSeconds,
} from './channel-names.js';
import { MessageCipher } from './message-crypto.js';
import { GROUP_ADD, GROUP_CHANNELS, GROUP_SEND, POP, PUSH, UNPOP } from './redis-scripts.js';
import { RedisHost, RedisShard } from '../redis/redis-shard.js';
import { DEFAULT_REDIS_HOSTS, RedisShards, keyPrefix } from '../redis/redis-shards.js';
import { fromJson, toJson } from './frozen-message.js';
import { randomName } from './random-name.js';

export type { RedisHost } from '../redis/redis-shard.js';

/** Options of {@link RedisChannelLayer}: the shared ones plus channels_redis' own. */
export interface RedisChannelLayerOptions extends ChannelLayerOptions {
  /**
   * The Redis host(s): a URL, several URLs separated by commas or spaces, or a list of URLs,
   * ioredis options or ioredis clients. With several, channels and groups are sharded over them
   * by a stable hash of their name; every process must list the same hosts in the same order.
   * Clients you pass stay yours: `close()` leaves them open. Redis 6.2 or later.
   * @default 'redis://127.0.0.1:6379'
   */
  hosts?: string | ReadonlyArray<RedisHost>;
  /**
   * Prefix of every key and pub/sub channel, so several apps can share one Redis; `flush()` only
   * deletes keys under it. Pub/sub ignores the database number: apps sharing a Redis need
   * distinct prefixes even on different databases. (Use this, not ioredis' `keyPrefix`.)
   * @default 'asgi'
   */
  prefix?: string;
  /**
   * Secrets to encrypt messages at rest in Redis with (AES-256-GCM). The first encrypts, all
   * decrypt: rotate by putting the new secret first, drop the old one after `expiry`. Every
   * process sharing the prefix needs the same list.
   * @default undefined (messages stored as plain JSON)
   */
  symmetricEncryptionKeys?: readonly string[];
  /**
   * Milliseconds an operation may wait for Redis (a reply, or the first connection) before it
   * rejects with `ChannelLayerUnavailable`. While Redis is known to be down, operations reject at
   * once. Applies to connections the layer creates; clients you pass keep their own settings.
   * @default 1000
   */
  timeout?: number;
  /**
   * Seconds between refreshes of the memberships of attached channels, which keep them alive in
   * Redis while members of dead processes expire.
   * @default groupExpiry / 3, at most 300
   */
  membershipRefresh?: number;
}

/**
 * Where a `groupSend` to one group goes in Redis, for a component whose own Lua script publishes
 * to the group in the same step as its own writes (`RedisRoomState.appendAndSend`: append to a
 * room's history and publish, atomically). Such a script must run on a connection to `server`,
 * do what `GROUP_SEND_FUNCTION` does with a payload serialized as `groupSend` would (`toJson`),
 * and hand the members it returns to `pushToMembers`. Not for apps: use `groupSend`.
 */
export interface GroupSendRoute {
  /** The Redis server and database holding the group's members and topic. */
  readonly server: string;
  /** The ZSET of the group's ordinary members: `group_send`'s first argument. */
  readonly membersKey: string;
  /** The group's pub/sub channel: `group_send`'s second argument. */
  readonly topic: string;
  /** Queues `payload` for the ordinary members the script returned, as `groupSend` does. */
  pushToMembers(members: readonly string[], payload: string): Promise<void>;
}

/** DI token for {@link RedisChannelLayerOptions}, when the layer is built by Nest. */
export const REDIS_CHANNEL_LAYER_OPTIONS = Symbol('REDIS_CHANNEL_LAYER_OPTIONS');

interface Waiter {
  resolve(message: ChannelMessage): void;
  reject(error: unknown): void;
  /** Its inbox's `pops` when it started waiting: unchanged means Redis never answered for it. */
  readonly since: number;
}

interface Attachment {
  readonly receiver: ChannelReceiver;
  /** Messages that arrived while the channel's queue was being drained; null once live. */
  backlog: ChannelMessage[] | null;
  /** Settles when the backlog has been delivered. */
  ready: Promise<void>;
}

/** A process-local message this process took from Redis (or got by fan-out), not yet received. */
interface Buffered {
  readonly message: ChannelMessage;
  readonly expiresAt: number;
}

/** A process-local member of a group, fanned out to by this process. */
interface Membership {
  readonly channel: string;
  /** Local clock, ms; ignored while the channel is attached. */
  expiresAt: number;
}

interface LocalGroup {
  readonly kind: 'group';
  readonly name: string;
  readonly topic: string;
  readonly shard: RedisShard;
  readonly members: Map<string, Membership>;
}

/** A queue this process reads: one channel's, or all process-local channels under one `x.y!`. */
interface Inbox {
  readonly kind: 'inbox';
  /** The channel, or the part of process-local names up to and including the `!`. */
  readonly name: string;
  readonly processLocal: boolean;
  readonly key: string;
  readonly topic: string;
  readonly shard: RedisShard;
  /** Created by this layer's `newChannel`: its channels are ours to fan out to. */
  owned: boolean;
  attached: number;
  waiting: number;
  listening: boolean;
  draining: Promise<void> | null;
  again: boolean;
  /** Successful POPs so far. */
  pops: number;
}

/** How many queued messages a drain takes per round trip when it can use them all. */
const BATCH = 100;
/** Members per GROUP_ADD call when refreshing, to keep Lua's unpack within bounds. */
const REFRESH_CHUNK = 500;

/**
 * The channel layer on Redis (channels_redis' `RedisChannelLayer`), for running one app as many
 * processes: same contract and conformance suite as the in-memory layer, on `ioredis`.
 *
 * - A `groupSend` is one script on the group's shard, whatever the group's size: it publishes the
 *   message once (serialized and sealed once) for every process-local member, and returns the
 *   ordinary members, which get one push each on their shards. Each process subscribed to the
 *   group fans out to its own members: parsed once, frozen once, the same object for every
 *   attached receiver. `RedisRoomState` may do the same publish in its own script, through
 *   {@link RedisChannelLayer.groupSendRoute}.
 * - A process-local channel `prefix.<node id>!<random>` belongs to the layer that made it;
 *   direct sends to it queue under `prefix.<node id>!` (capacity counts there) and wake the owner.
 * - Memberships expire after `groupExpiry`; each process refreshes those of its attached
 *   channels, so a dead process's members go away and live ones stay.
 * - While Redis is unreachable operations reject promptly with `ChannelLayerUnavailable`; when it
 *   comes back, subscriptions and the memberships of attached channels are restored.
 */
@Injectable()
export class RedisChannelLayer extends ChannelLayer {
  readonly stats: ChannelLayerStats = { groupSendSkippedFull: 0 };
  /** Unique per layer instance; names its process-local channels. */
  readonly nodeId = randomName(12);

  private readonly logger = new Logger(RedisChannelLayer.name);
  private readonly expiryMs: number;
  private readonly groupExpiryMs: number;
  private readonly capacity: number;
  private readonly capacities: CapacityTable;
  private readonly prefix: string;
  private readonly cipher: MessageCipher | null;
  private readonly shards: RedisShards;
  private readonly refreshMs: number;

  private readonly attached = new Map<string, Attachment>();
  private readonly waiters = new Map<string, Waiter[]>();
  private readonly buffered = new Map<string, Buffered[]>();
  private readonly inboxes = new Map<string, Inbox>();
  private readonly groups = new Map<string, LocalGroup>();
  /** Subscribed pub/sub channel → what it feeds. */
  private readonly topics = new Map<string, LocalGroup | Inbox>();
  private readonly timer: NodeJS.Timeout;
  private nextRefresh: number;
  private closed = false;
  /** The end of a groupSend whose publish a {@link GroupSendRoute}'s script made. */
  private readonly pushToMembers = async (
    members: readonly string[],
    payload: string,
  ): Promise<void> => {
    if (members.length > 0) this.stats.groupSendSkippedFull += await this.pushAll(members, payload);
  };

  constructor(
    @Optional() @Inject(REDIS_CHANNEL_LAYER_OPTIONS) options: RedisChannelLayerOptions = {},
  ) {
    super();
    this.expiryMs = Math.round(positiveSeconds(options.expiry ?? 60, 'expiry') * 1000);
    this.groupExpiryMs = Math.round(
      positiveSeconds(options.groupExpiry ?? 86400, 'groupExpiry') * 1000,
    );
    this.capacity = options.capacity ?? 100;
    if (!Number.isInteger(this.capacity) || this.capacity < 1) {
      throw new InvalidChannelLayerInput('capacity must be an integer >= 1');
    }
    this.capacities = compileCapacities(options.channelCapacity ?? {});
    this.prefix = keyPrefix(options.prefix);
    this.cipher = options.symmetricEncryptionKeys
      ? new MessageCipher(options.symmetricEncryptionKeys)
      : null;
    this.refreshMs =
      positiveSeconds(
        options.membershipRefresh ?? Math.min(this.groupExpiryMs / 3000, 300),
        'membershipRefresh',
      ) * 1000;

    this.shards = new RedisShards({
      hosts: options.hosts ?? DEFAULT_REDIS_HOSTS,
      timeout: options.timeout ?? 1000,
      owner: 'layer',
      logger: this.logger,
      events: {
        message: (topic, payload) => this.onTopicMessage(topic, payload),
        recovered: (shard) => {
          void this.refreshMemberships(shard);
          this.resume(shard);
        },
      },
    });

    this.nextRefresh = Date.now() + this.refreshMs;
    // Refresh memberships, and sweep what this process holds for channels nobody reads.
    const period = Math.min(Math.max(Math.min(this.refreshMs, this.expiryMs), 100), 60_000);
    this.timer = setInterval(() => this.tick(), period).unref();
  }

  async send(channel: string, message: ChannelMessage): Promise<void> {
    this.assertOpen();
    assertChannelName(channel);
    const json = toJson(message);
    const attachment = this.attached.get(channel);
    if (attachment) {
      // Attached here: deliver directly, so a refusal is a ChannelFull the sender sees. Wait for
      // messages queued before the attach first, to keep the order.
      if (attachment.backlog) await attachment.ready;
      if (this.attached.get(channel) === attachment) {
        if (attachment.receiver(fromJson(json)) === false) throw new ChannelFull(channel);
        return;
      }
    }
    const name = nonLocalName(channel);
    const refused = await this.shardOf(name).run(
      PUSH,
      [this.queueKey(name)],
      [
        this.expiryMs,
        this.seal(json),
        capacityOf(this.capacities, channel, this.capacity),
        channel.slice(name.length),
        this.inboxTopic(name),
      ],
    );
    if (refused !== 0) throw new ChannelFull(channel);
  }

  async receive(channel: string, options: ReceiveOptions = {}): Promise<ChannelMessage> {
    this.assertOpen();
    assertChannelName(channel);
    if (this.attached.has(channel)) {
      throw new InvalidChannelLayerInput(
        `channel ${channel} is attached; it cannot be received from`,
      );
    }
    const signal = options.signal;
    signal?.throwIfAborted();
    const ready = this.takeBuffered(channel);
    if (ready) return ready;
    const inbox = this.inboxOf(nonLocalName(channel));
    const received = new Promise<ChannelMessage>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, since: inbox.pops };
      let line = this.waiters.get(channel);
      if (!line) this.waiters.set(channel, (line = []));
      line.push(waiter);
      inbox.waiting++;
      if (!signal) return;
      const onAbort = (): void => {
        if (this.removeWaiter(channel, waiter, inbox)) reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      const settle = (): void => signal.removeEventListener('abort', onAbort);
      waiter.resolve = (message) => {
        settle();
        resolve(message);
      };
      waiter.reject = (error) => {
        settle();
        reject(error);
      };
    });
    void this.drain(inbox);
    return received;
  }

  async newChannel(prefix = 'specific'): Promise<string> {
    this.assertOpen();
    const name = `${prefix}.${this.nodeId}!${randomName(12)}`;
    assertChannelName(name);
    const inbox = this.inboxOf(nonLocalName(name));
    inbox.owned = true;
    // Listen for wakes and for memberships added by other processes (at once when already
    // subscribed). A name needs no Redis: while it is away the subscription waits for it.
    await this.listen(inbox).catch(() => undefined);
    return name;
  }

  async groupAdd(group: string, channel: string): Promise<void> {
    this.assertOpen();
    assertGroupName(group);
    assertChannelName(channel);
    const processLocal = channel.includes('!');
    const shard = this.shardOf(group);
    const key = processLocal ? this.localMembersKey(group) : this.membersKey(group);
    await shard.run(GROUP_ADD, [key], [this.groupExpiryMs, channel]);
    if (!processLocal) return;
    if (this.isLocal(channel)) await this.join(group, channel);
    else await this.notifyOwner('a', group, channel);
  }

  async groupDiscard(group: string, channel: string): Promise<void> {
    assertGroupName(group);
    assertChannelName(channel);
    // Sockets leave their groups while the app shuts down; once closed there is nothing to do,
    // and memberships left in Redis expire.
    if (this.closed) return;
    const processLocal = channel.includes('!');
    if (processLocal) this.leave(group, channel);
    const key = processLocal ? this.localMembersKey(group) : this.membersKey(group);
    await this.shardOf(group).command((client) => client.zrem(key, channel));
    if (processLocal && !this.isLocal(channel)) await this.notifyOwner('d', group, channel);
  }

  async groupChannels(group: string): Promise<string[]> {
    this.assertOpen();
    assertGroupName(group);
    const live = (await this.shardOf(group).run(
      GROUP_CHANNELS,
      [this.membersKey(group), this.localMembersKey(group)],
      [],
    )) as string[];
    const local = this.groups.get(group);
    if (!local) return live;
    // Attached members are alive even if a refresh is late.
    const all = new Set(live);
    for (const member of local.members.values()) {
      if (this.attached.has(member.channel)) all.add(member.channel);
    }
    return [...all];
  }

  async groupSend(group: string, message: ChannelMessage): Promise<void> {
    this.assertOpen();
    assertGroupName(group);
    const payload = this.seal(toJson(message));
    const queued = (await this.shardOf(group).run(
      GROUP_SEND,
      [this.membersKey(group)],
      [this.groupTopic(group), payload],
    )) as string[];
    if (queued.length > 0) this.stats.groupSendSkippedFull += await this.pushAll(queued, payload);
  }

  /**
   * For `RedisRoomState`, not for apps: the route of a `groupSend` to `group`, so that the
   * caller's script can publish in the same step as its own writes (see {@link GroupSendRoute}).
   * Undefined when a groupSend of this layer cannot be done that way: it seals payloads (a script
   * cannot splice anything into ciphertext), or a subclass overrides `groupSend` (it would be
   * bypassed). Throws as `groupSend` does on a closed layer or an invalid group name.
   */
  groupSendRoute(group: string): GroupSendRoute | undefined {
    this.assertOpen();
    assertGroupName(group);
    if (this.cipher || this.groupSend !== RedisChannelLayer.prototype.groupSend) return undefined;
    return {
      server: this.shardOf(group).server,
      membersKey: this.membersKey(group),
      topic: this.groupTopic(group),
      pushToMembers: this.pushToMembers,
    };
  }

  attach(channel: string, receiver: ChannelReceiver): () => void {
    this.assertOpen();
    assertChannelName(channel);
    if (this.attached.has(channel)) {
      throw new InvalidChannelLayerInput(`channel ${channel} is already attached`);
    }
    if ((this.waiters.get(channel)?.length ?? 0) > 0) {
      throw new InvalidChannelLayerInput(`channel ${channel} has a pending receive`);
    }
    const backlog: ChannelMessage[] = [];
    for (let next = this.takeBuffered(channel); next; next = this.takeBuffered(channel)) {
      backlog.push(next);
    }
    const attachment: Attachment = { receiver, backlog, ready: Promise.resolve() };
    this.attached.set(channel, attachment);
    const inbox = this.inboxOf(nonLocalName(channel));
    inbox.attached++;
    attachment.ready = this.catchUp(channel, inbox, attachment);
    return () => {
      if (this.attached.get(channel) !== attachment) return;
      this.attached.delete(channel);
      inbox.attached--;
      this.settle(inbox);
    };
  }

  async flush(): Promise<void> {
    this.assertOpen();
    await this.shards.deleteUnder(this.prefix);
    this.buffered.clear();
    for (const group of [...this.groups.values()]) this.dropGroup(group);
  }

  /** PINGs every shard: ready only when all of them answer. */
  override async ping(): Promise<void> {
    this.assertOpen();
    await Promise.all(this.shards.all.map((shard) => shard.command((client) => client.ping())));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    const error = new ChannelLayerClosed();
    for (const line of this.waiters.values()) for (const waiter of line) waiter.reject(error);
    this.waiters.clear();
    this.attached.clear();
    this.buffered.clear();
    this.groups.clear();
    this.inboxes.clear();
    this.topics.clear();
    await this.shards.close();
  }

  // --- fan-out: the hot path -------------------------------------------------------------------

  private onTopicMessage(topic: string, payload: string): void {
    const target = this.topics.get(topic);
    if (target === undefined || this.closed) return;
    if (target.kind === 'group') this.fanOut(target, payload);
    else this.onInboxSignal(target, payload);
  }

  /** One parse, one freeze, the same object for every local member; nothing else per member. */
  private fanOut(group: LocalGroup, payload: string): void {
    const message = this.open(payload);
    if (message === undefined) return;
    const now = Date.now();
    for (const member of group.members.values()) {
      const attachment = this.attached.get(member.channel);
      if (attachment !== undefined) {
        if (attachment.backlog !== null) attachment.backlog.push(message);
        else if (!this.deliver(attachment, message)) this.stats.groupSendSkippedFull++;
      } else if (member.expiresAt <= now) {
        group.members.delete(member.channel);
      } else if (!this.offer(member.channel, message, now + this.expiryMs)) {
        this.stats.groupSendSkippedFull++;
      }
    }
    if (group.members.size === 0) this.dropGroup(group);
  }

  /** Calls a receiver from a Redis event, where a throw would have no caller to reach. */
  private deliver(attachment: Attachment, message: ChannelMessage): boolean {
    try {
      return attachment.receiver(message) !== false;
    } catch (error) {
      this.logger.error(`a channel receiver threw: ${String(error)}`);
      return true;
    }
  }

  /** Hands a message to a waiting receive, or keeps it for the next one. False when full. */
  private offer(channel: string, message: ChannelMessage, expiresAt: number): boolean {
    const waiter = this.takeWaiter(channel);
    if (waiter) {
      waiter.resolve(message);
      return true;
    }
    let kept = this.buffered.get(channel);
    if (!kept) this.buffered.set(channel, (kept = []));
    if (kept.length >= capacityOf(this.capacities, channel, this.capacity)) return false;
    kept.push({ message, expiresAt });
    return true;
  }

  // --- queues ----------------------------------------------------------------------------------

  /**
   * Takes queued messages while someone here wants them, then listens for wakes. One drain per
   * inbox at a time; a wake during a drain makes it go round again. Never rejects.
   */
  private drain(inbox: Inbox): Promise<void> {
    if (inbox.draining) {
      inbox.again = true;
      return inbox.draining;
    }
    const draining = this.drainLoop(inbox).finally(() => {
      inbox.draining = null;
      this.settle(inbox);
    });
    inbox.draining = draining;
    return draining;
  }

  private async drainLoop(inbox: Inbox): Promise<void> {
    try {
      for (;;) {
        inbox.again = false;
        const want = this.demand(inbox);
        if (want === 0 || this.closed) return;
        const entries = (await inbox.shard.run(POP, [inbox.key], [want])) as string[];
        if (this.closed) return;
        inbox.pops++;
        this.dispatch(inbox, entries);
        if (entries.length === want || inbox.again) continue;
        // Empty. Subscribe, then look once more: a send between our pop and the subscription
        // woke nobody.
        if (!inbox.listening && this.demand(inbox) > 0) {
          await this.listen(inbox);
          continue;
        }
        return;
      }
    } catch (error) {
      if (this.closed) return;
      // The receives waiting here would wait on a Redis we can't reach: tell them.
      this.failWaiters(inbox, error);
    }
  }

  private dispatch(inbox: Inbox, entries: readonly string[]): void {
    let unclaimed: string[] | null = null;
    for (const entry of entries) {
      const first = entry.indexOf(':');
      const second = entry.indexOf(':', first + 1);
      const channel = inbox.processLocal ? inbox.name + entry.slice(first + 1, second) : inbox.name;
      const message = this.open(entry.slice(second + 1));
      if (message === undefined) continue;
      const attachment = this.attached.get(channel);
      if (attachment !== undefined) {
        if (attachment.backlog !== null) attachment.backlog.push(message);
        else this.deliver(attachment, message);
      } else if (inbox.processLocal) {
        this.offer(channel, message, Number(entry.slice(0, first)));
      } else {
        const waiter = this.takeWaiter(channel);
        // No waiter: its receive was aborted meanwhile. Give the message back to the queue,
        // where another process may be waiting for it.
        if (waiter) waiter.resolve(message);
        else (unclaimed ??= []).push(entry);
      }
    }
    if (unclaimed) {
      inbox.shard
        .run(UNPOP, [inbox.key], [inbox.topic, ...unclaimed])
        .catch((error: unknown) =>
          this.logger.warn(`lost ${unclaimed.length} message(s): ${String(error)}`),
        );
    }
  }

  private async catchUp(channel: string, inbox: Inbox, attachment: Attachment): Promise<void> {
    await this.drain(inbox);
    const backlog = attachment.backlog ?? [];
    attachment.backlog = null;
    if (this.attached.get(channel) !== attachment) {
      // Detached meanwhile: keep them for a later receive or attach.
      const expiresAt = Date.now() + this.expiryMs;
      if (inbox.processLocal)
        for (const message of backlog) this.offer(channel, message, expiresAt);
      return;
    }
    for (const message of backlog) this.deliver(attachment, message);
  }

  private demand(inbox: Inbox): number {
    if (inbox.attached > 0) return BATCH;
    // Process-local queues mix channels: take what is there and sort it out here.
    if (inbox.processLocal) return inbox.waiting > 0 ? BATCH : 0;
    return inbox.waiting;
  }

  private onInboxSignal(inbox: Inbox, signal: string): void {
    if (signal === 'w') {
      void this.drain(inbox);
      return;
    }
    const [op, group, channel] = signal.split(' ');
    if (!isValidGroupName(group) || channel === undefined || !this.isLocal(channel)) return;
    if (op === 'a') {
      this.join(group, channel).catch((error: unknown) =>
        this.logger.warn(`could not join ${channel} to ${group}: ${String(error)}`),
      );
    } else if (op === 'd') {
      this.leave(group, channel);
    }
  }

  private inboxOf(name: string): Inbox {
    let inbox = this.inboxes.get(name);
    if (!inbox) {
      const shard = this.shardOf(name);
      inbox = {
        kind: 'inbox',
        name,
        processLocal: name.endsWith('!'),
        key: this.queueKey(name),
        topic: this.inboxTopic(name),
        shard,
        owned: false,
        attached: 0,
        waiting: 0,
        listening: false,
        draining: null,
        again: false,
        pops: 0,
      };
      this.inboxes.set(name, inbox);
    }
    return inbox;
  }

  private listen(inbox: Inbox): Promise<void> {
    if (!inbox.listening) {
      inbox.listening = true;
      this.topics.set(inbox.topic, inbox);
    }
    return inbox.shard.subscribe(inbox.topic);
  }

  /** Forgets an inbox nobody here uses any more. */
  private settle(inbox: Inbox): void {
    if (inbox.owned || inbox.draining || inbox.attached > 0 || inbox.waiting > 0) return;
    if (this.inboxes.get(inbox.name) !== inbox) return;
    this.inboxes.delete(inbox.name);
    if (inbox.listening) {
      inbox.listening = false;
      this.topics.delete(inbox.topic);
      inbox.shard.unsubscribe(inbox.topic);
    }
  }

  private takeWaiter(channel: string): Waiter | undefined {
    const line = this.waiters.get(channel);
    if (line === undefined) return undefined;
    const waiter = line.shift();
    if (line.length === 0) this.waiters.delete(channel);
    const inbox = this.inboxes.get(nonLocalName(channel));
    if (waiter && inbox) {
      inbox.waiting--;
      this.settle(inbox);
    }
    return waiter;
  }

  private removeWaiter(channel: string, waiter: Waiter, inbox: Inbox): boolean {
    const line = this.waiters.get(channel);
    const at = line ? line.indexOf(waiter) : -1;
    if (!line || at === -1) return false;
    line.splice(at, 1);
    if (line.length === 0) this.waiters.delete(channel);
    inbox.waiting--;
    this.settle(inbox);
    return true;
  }

  /**
   * Rejects the receives that Redis never answered for: issued while it is unreachable, they
   * must not hang. Those already waiting on a checked queue keep waiting through an outage.
   */
  private failWaiters(inbox: Inbox, error: unknown): void {
    for (const [channel, line] of [...this.waiters]) {
      if (nonLocalName(channel) !== inbox.name) continue;
      const kept = line.filter((waiter) => waiter.since !== inbox.pops);
      if (kept.length === line.length) continue;
      if (kept.length > 0) this.waiters.set(channel, kept);
      else this.waiters.delete(channel);
      inbox.waiting -= line.length - kept.length;
      for (const waiter of line) if (waiter.since === inbox.pops) waiter.reject(error);
    }
  }

  private takeBuffered(channel: string): ChannelMessage | undefined {
    const kept = this.buffered.get(channel);
    if (!kept) return undefined;
    const now = Date.now();
    let found: ChannelMessage | undefined;
    while (kept.length > 0 && !found) {
      const head = kept.shift() as Buffered;
      if (head.expiresAt > now) found = head.message;
    }
    if (kept.length === 0) this.buffered.delete(channel);
    return found;
  }

  /** Pushes one payload to ordinary members' queues: one script per shard holding some. */
  private async pushAll(channels: readonly string[], payload: string): Promise<number> {
    const byShard = new Map<RedisShard, { keys: string[]; args: Array<string | number> }>();
    for (const channel of channels) {
      const shard = this.shardOf(channel);
      let batch = byShard.get(shard);
      if (!batch) byShard.set(shard, (batch = { keys: [], args: [this.expiryMs, payload] }));
      batch.keys.push(this.queueKey(channel));
      batch.args.push(
        capacityOf(this.capacities, channel, this.capacity),
        '',
        this.inboxTopic(channel),
      );
    }
    const full = await Promise.all(
      [...byShard].map(([shard, batch]) => shard.run(PUSH, batch.keys, batch.args)),
    );
    return full.reduce<number>((sum, count) => sum + Number(count), 0);
  }

  // --- memberships of this process's channels ---------------------------------------------------

  /** Ours to fan out to: made by this layer's `newChannel`, or attached here. */
  private isLocal(channel: string): boolean {
    if (!channel.includes('!')) return false;
    return this.attached.has(channel) || this.inboxes.get(nonLocalName(channel))?.owned === true;
  }

  private async join(group: string, channel: string): Promise<void> {
    let local = this.groups.get(group);
    if (!local) {
      local = {
        kind: 'group',
        name: group,
        topic: this.groupTopic(group),
        shard: this.shardOf(group),
        members: new Map(),
      };
      this.groups.set(group, local);
      this.topics.set(local.topic, local);
    }
    const expiresAt = Date.now() + this.groupExpiryMs;
    const member = local.members.get(channel);
    if (member) member.expiresAt = expiresAt;
    else local.members.set(channel, { channel, expiresAt });
    // Resolve only once subscribed, so a groupSend right after groupAdd reaches the channel.
    await local.shard.subscribe(local.topic);
  }

  private leave(group: string, channel: string): void {
    const local = this.groups.get(group);
    if (local?.members.delete(channel) && local.members.size === 0) this.dropGroup(local);
  }

  private dropGroup(group: LocalGroup): void {
    if (this.groups.get(group.name) !== group) return;
    this.groups.delete(group.name);
    this.topics.delete(group.topic);
    group.shard.unsubscribe(group.topic);
  }

  private async notifyOwner(op: 'a' | 'd', group: string, channel: string): Promise<void> {
    const name = nonLocalName(channel);
    await this.shardOf(name).command((client) =>
      client.publish(this.inboxTopic(name), `${op} ${group} ${channel}`),
    );
  }

  /**
   * Re-adds the memberships of attached channels: periodically so they outlive `groupExpiry`,
   * and when a shard comes back, since Redis may have lost them.
   */
  private async refreshMemberships(only?: RedisShard): Promise<void> {
    if (this.closed) return;
    const expiresAt = Date.now() + this.groupExpiryMs;
    const calls: Array<Promise<unknown>> = [];
    for (const group of this.groups.values()) {
      if (only && group.shard !== only) continue;
      const channels: string[] = [];
      for (const member of group.members.values()) {
        if (!this.attached.has(member.channel)) continue;
        member.expiresAt = expiresAt;
        channels.push(member.channel);
      }
      for (let at = 0; at < channels.length; at += REFRESH_CHUNK) {
        calls.push(
          group.shard.run(
            GROUP_ADD,
            [this.localMembersKey(group.name)],
            [this.groupExpiryMs, ...channels.slice(at, at + REFRESH_CHUNK)],
          ),
        );
      }
    }
    const failed = (await Promise.allSettled(calls)).filter(
      (result) => result.status === 'rejected',
    );
    if (failed.length > 0 && !this.closed) {
      this.logger.warn(`could not refresh ${failed.length} group(s); retrying later`);
    }
  }

  /** Subscriptions are back: take what was queued while wakes could not reach us. */
  private resume(shard: RedisShard): void {
    for (const inbox of this.inboxes.values()) {
      if (inbox.shard === shard && this.demand(inbox) > 0) void this.drain(inbox);
    }
  }

  private tick(): void {
    const now = Date.now();
    for (const [channel, kept] of this.buffered) {
      while (kept.length > 0 && kept[0].expiresAt <= now) kept.shift();
      if (kept.length === 0) this.buffered.delete(channel);
    }
    for (const group of [...this.groups.values()]) {
      for (const member of group.members.values()) {
        if (member.expiresAt <= now && !this.attached.has(member.channel)) {
          group.members.delete(member.channel);
        }
      }
      if (group.members.size === 0) this.dropGroup(group);
    }
    if (now >= this.nextRefresh) {
      this.nextRefresh = now + this.refreshMs;
      void this.refreshMemberships();
    }
  }

  // --- names and payloads ----------------------------------------------------------------------

  private shardOf(name: string): RedisShard {
    return this.shards.of(name);
  }

  private queueKey(name: string): string {
    return `${this.prefix}:q:${name}`;
  }

  private membersKey(group: string): string {
    return `${this.prefix}:g:${group}`;
  }

  private localMembersKey(group: string): string {
    return `${this.prefix}:gl:${group}`;
  }

  private groupTopic(group: string): string {
    return `${this.prefix}:gs:${group}`;
  }

  private inboxTopic(name: string): string {
    return `${this.prefix}:in:${name}`;
  }

  private seal(json: string): string {
    return this.cipher ? this.cipher.seal(json) : json;
  }

  /** The frozen message in a payload from Redis; undefined (and logged) if it can't be read. */
  private open(payload: string): ChannelMessage | undefined {
    try {
      return fromJson(this.cipher ? this.cipher.open(payload) : payload);
    } catch (error) {
      this.logger.warn(`dropped a message that could not be read: ${String(error)}`);
      return undefined;
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new ChannelLayerClosed();
  }
}
