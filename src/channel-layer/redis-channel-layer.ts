import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { BaseChannelLayer } from './base-channel-layer.js';
import {
  ChannelMessage,
  ChannelReceiver,
  DeliveryGapListener,
  ReceiveOptions,
} from './channel-layer.js';
import {
  ChannelFull,
  ChannelLayerClosed,
  InvalidChannelLayerInput,
} from './channel-layer.errors.js';
import {
  assertChannelName,
  assertGroupName,
  isValidGroupName,
  nonLocalName,
  positiveSeconds,
} from './channel-names.js';
import { fromJson, toJson } from './frozen-message.js';
import {
  GroupAddStepCall,
  GroupDiscardStepCall,
  GroupSendStepCall,
  jsonAround,
} from './redis-steps.js';
import { MessageCipher } from './message-crypto.js';
import { REDIS_CHANNEL_LAYER_OPTIONS } from './redis-channel-layer.options.js';
import type { RedisChannelLayerOptions } from './redis-channel-layer.options.js';
import { Inbox } from './redis-inbox.js';
import { LocalChannels } from './redis-local-channels.js';
import { LocalGroup, LocalGroups } from './redis-local-groups.js';
import { GROUP_ADD, GROUP_CHANNELS, GROUP_SEND, LayerKeys, PUSH } from './redis-scripts.js';
import { RedisShard } from '../redis/redis-shard.js';
import { DEFAULT_REDIS_HOSTS, RedisShards, keyPrefix } from '../redis/redis-shards.js';

export type { RedisHost } from '../redis/redis-shard.js';
export type { RedisClusterHosts, RedisHosts } from '../redis/redis-shards.js';
export * from './redis-channel-layer.options.js';

/** Channels one `groupAddWith` or `groupDiscardWith` takes at most: Lua's `unpack` bound. */
const MAX_STEP_CHANNELS = 1000;

/** Throws `InvalidChannelLayerInput` unless `channels`, 1 to 1000, may be members of `group`. */
function assertStepMembers(group: string, channels: readonly string[]): void {
  assertGroupName(group);
  if (channels.length === 0 || channels.length > MAX_STEP_CHANNELS) {
    throw new InvalidChannelLayerInput(`a step takes 1 to ${MAX_STEP_CHANNELS} channels`);
  }
  for (const channel of channels) assertChannelName(channel);
}

/**
 * The channel layer on Redis (channels_redis' `RedisChannelLayer`), for running one app as many
 * processes: same contract and conformance suite as the in-memory layer, on `ioredis`.
 *
 * - A `groupSend` is one script on the group's shard, whatever the group's size: it publishes the
 *   message once (serialized and sealed once) for every process-local member, and returns the
 *   ordinary members, which get one push each on their shards. Each process subscribed to the
 *   group fans out to its own members: parsed once, frozen once, the same object for every
 *   attached receiver. {@link RedisChannelLayer.groupSendWith} runs a caller's step in the same
 *   script (`RedisRoomState` appends to a room's history there).
 * - A process-local channel `prefix.<node id>!<random>` belongs to the layer that made it;
 *   direct sends to it queue under `prefix.<node id>!` (capacity counts there) and wake the owner.
 * - Memberships expire after `groupExpiry`; each process refreshes those of its attached
 *   channels, so a dead process's members go away and live ones stay.
 * - While Redis is unreachable operations reject promptly with `ChannelLayerUnavailable`; when it
 *   comes back, subscriptions and the memberships of attached channels are restored.
 */
@Injectable()
export class RedisChannelLayer extends BaseChannelLayer {
  private readonly logger = new Logger(RedisChannelLayer.name);
  private readonly prefix: string;
  /** Each shard's key layout, by its index. */
  private readonly shardKeys: LayerKeys[];
  private readonly cipher: MessageCipher | null;
  private readonly shards: RedisShards;
  private readonly refreshMs: number;

  private readonly local: LocalChannels;
  private readonly inboxes = new Map<string, Inbox>();
  private readonly groups: LocalGroups;
  /** Subscribed pub/sub channel → what it feeds. */
  private readonly topics = new Map<string, LocalGroup | Inbox>();
  private readonly timer: NodeJS.Timeout;
  private readonly gapListeners: DeliveryGapListener[] = [];
  /** The groups each shard's last `lost` named, until its `back`. */
  private readonly lostGroups = new Map<RedisShard, string[]>();
  /** Pending retries of {@link restoreMemberships}, by shard. */
  private readonly restoring = new Map<RedisShard, NodeJS.Timeout>();
  private nextRefresh: number;

  constructor(
    @Optional() @Inject(REDIS_CHANNEL_LAYER_OPTIONS) options: RedisChannelLayerOptions = {},
  ) {
    super(options);
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
          this.restoreMemberships(shard);
          this.resume(shard);
          this.tellGap(shard, 'back');
        },
        lost: (shard) => this.tellGap(shard, 'lost'),
      },
    });
    this.shardKeys = this.shards.all.map((shard) => new LayerKeys(this.prefix, shard.tag));
    this.local = new LocalChannels({
      expiryMs: this.expiryMs,
      logger: this.logger,
      capacityOf: (channel) => this.capacityOf(channel),
      serveWaiting: (channel, message) =>
        this.inboxes.get(nonLocalName(channel))?.receives.serve(channel, message) === true,
    });
    this.groups = new LocalGroups({
      shards: this.shards,
      keysOf: (shard) => this.keysOf(shard),
      groupExpiryMs: this.groupExpiryMs,
      logger: this.logger,
      isClosed: () => this.closed,
      isAttached: (channel) => this.local.has(channel),
      route: (topic, group) => this.route(topic, group),
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
    const attachment = this.local.get(channel);
    if (attachment) {
      // Attached here: deliver directly, so a refusal is a ChannelFull the sender sees. Wait for
      // messages queued before the attach first, to keep the order.
      if (attachment.backlog) await attachment.ready;
      if (this.local.get(channel) === attachment) {
        if (attachment.receiver(fromJson(json)) === false) throw new ChannelFull(channel);
        return;
      }
    }
    const name = nonLocalName(channel);
    const shard = this.shards.of(name);
    const keys = this.keysOf(shard);
    const refused = await shard.run(
      PUSH,
      [keys.queue(name)],
      [
        this.expiryMs,
        this.seal(json),
        this.capacityOf(channel),
        channel.slice(name.length),
        keys.inboxTopic(name),
      ],
    );
    if (refused !== 0) throw new ChannelFull(channel);
  }

  async receive(channel: string, options: ReceiveOptions = {}): Promise<ChannelMessage> {
    this.assertReceivable(channel, options.signal);
    return (
      this.local.take(channel) ??
      this.inboxOf(nonLocalName(channel)).receive(channel, options.signal)
    );
  }

  async newChannel(prefix = 'specific'): Promise<string> {
    const name = this.newChannelName(prefix);
    // Listen for wakes and for memberships added by other processes (at once when already
    // subscribed). A name needs no Redis: while it is away the subscription waits for it.
    await this.inboxOf(nonLocalName(name))
      .own()
      .catch(() => undefined);
    return name;
  }

  async groupAdd(group: string, channel: string): Promise<void> {
    this.assertOpen();
    assertGroupName(group);
    assertChannelName(channel);
    const processLocal = channel.includes('!');
    const shard = this.shards.of(group);
    const keys = this.keysOf(shard);
    const key = processLocal ? keys.localMembers(group) : keys.members(group);
    await shard.run(GROUP_ADD, [key], [this.groupExpiryMs, channel]);
    if (!processLocal) return;
    if (this.isLocal(channel)) await this.groups.join(group, channel);
    else await this.notifyOwner('a', group, channel);
  }

  async groupDiscard(group: string, channel: string): Promise<void> {
    assertGroupName(group);
    assertChannelName(channel);
    // Sockets leave their groups while the app shuts down; once closed there is nothing to do,
    // and memberships left in Redis expire.
    if (this.closed) return;
    const processLocal = channel.includes('!');
    if (processLocal) this.groups.leave(group, channel);
    const shard = this.shards.of(group);
    const keys = this.keysOf(shard);
    const key = processLocal ? keys.localMembers(group) : keys.members(group);
    await shard.command((client) => client.zrem(key, channel));
    if (processLocal && !this.isLocal(channel)) await this.notifyOwner('d', group, channel);
  }

  async groupChannels(group: string): Promise<string[]> {
    this.assertOpen();
    assertGroupName(group);
    const shard = this.shards.of(group);
    const keys = this.keysOf(shard);
    const live = (await shard.run(
      GROUP_CHANNELS,
      [keys.members(group), keys.localMembers(group)],
      [],
    )) as string[];
    const local = this.groups.get(group);
    if (!local) return live;
    // Attached members are alive even if a refresh is late.
    const all = new Set(live);
    for (const member of local.members.values()) {
      if (this.local.has(member.channel)) all.add(member.channel);
    }
    return [...all];
  }

  async groupSend(group: string, message: ChannelMessage): Promise<void> {
    this.assertOpen();
    assertGroupName(group);
    const payload = this.seal(toJson(message));
    const shard = this.shards.of(group);
    const keys = this.keysOf(shard);
    const queued = (await shard.run(
      GROUP_SEND,
      [keys.members(group)],
      [keys.groupTopic(group), payload],
    )) as string[];
    if (queued.length > 0) this.stats.groupSendSkippedFull += await this.pushAll(queued, payload);
  }

  /**
   * `groupSend(group, message)` with a caller's `GroupSendStep` in the same Redis script,
   * before the publish: what the step writes and the send happen at once. The message goes out
   * with `message[call.field]` set to the step's first result; with no `call.field`, that result
   * is the message's JSON and `message` only stands for it. Resolves with the step's results;
   * with `undefined`, having done nothing, when this layer cannot send in someone else's script,
   * so the caller sends with `groupSend` itself: when it seals payloads (a script cannot write
   * into ciphertext), when the group's Redis is not `call.server`, or when `groupSend` is
   * overridden (the override must see every group message). Throws as `groupSend` does.
   */
  async groupSendWith(
    group: string,
    message: ChannelMessage,
    call: GroupSendStepCall,
  ): Promise<unknown[] | undefined> {
    this.assertOpen();
    assertGroupName(group);
    const shard = this.shards.of(group);
    if (this.cipher || shard.server !== call.server) return undefined;
    if (this.groupSend !== RedisChannelLayer.prototype.groupSend) return undefined;
    const [head, tail] = call.field === undefined ? ['', ''] : jsonAround(message, call.field);
    const keys = this.keysOf(shard);
    const [queued, done] = (await shard.run(
      call.step.script,
      [...call.keys, keys.members(group)],
      [...call.args, keys.groupTopic(group), head, tail],
    )) as [string[], unknown[]];
    if (queued.length > 0 && typeof done[0] === 'string') {
      this.stats.groupSendSkippedFull += await this.pushAll(queued, head + done[0] + tail);
    }
    return done;
  }

  /**
   * `groupAdd(group, channel)` for each of `channels` (1 to 1000) with a caller's `GroupAddStep`
   * in the same Redis script, after the adds: the memberships and what the step writes and reads
   * happen at once. Subscribed to the group first, so any message published after the script
   * reaches the channels. Resolves with the step's result; with `undefined`, having done nothing,
   * when the adds cannot be part of someone else's script (see {@link canRunGroupStep}), so the
   * caller adds with `groupAdd` itself. Throws as `groupAdd` does, the memberships then still to
   * be discarded.
   */
  async groupAddWith(
    group: string,
    channels: readonly string[],
    call: GroupAddStepCall,
  ): Promise<unknown> {
    this.assertOpen();
    assertStepMembers(group, channels);
    if (!this.canRunGroupStep(group, channels, call.server)) return undefined;
    const shard = this.shards.of(group);
    await Promise.all(channels.map((channel) => this.groups.join(group, channel)));
    return shard.run(
      call.step.script,
      [...call.keys, this.keysOf(shard).localMembers(group)],
      [...call.args, this.groupExpiryMs, ...channels, channels.length],
    );
  }

  /**
   * `groupDiscard(group, channel)` for each of `channels` with a caller's `GroupDiscardStep` in
   * the same Redis script, after the discards. Resolves with the step's result; with `undefined`,
   * having done nothing, where {@link groupAddWith} would; once the layer is closed, with
   * `undefined` too, as `groupDiscard` does nothing then. Throws as `groupDiscard` does.
   */
  async groupDiscardWith(
    group: string,
    channels: readonly string[],
    call: GroupDiscardStepCall,
  ): Promise<unknown> {
    assertStepMembers(group, channels);
    if (this.closed || !this.canRunGroupStep(group, channels, call.server)) return undefined;
    for (const channel of channels) this.groups.leave(group, channel);
    const shard = this.shards.of(group);
    return shard.run(
      call.step.script,
      [...call.keys, this.keysOf(shard).localMembers(group)],
      [...call.args, ...channels, channels.length],
    );
  }

  /**
   * Whether a step on `server` may carry `channels`' memberships of `group`: only for
   * process-local channels of this layer (their memberships are the ones a script can write
   * alone), on the Redis holding the group's keys, and unless `groupAdd` or `groupDiscard` is
   * overridden (the override must see every membership change).
   */
  canRunGroupStep(group: string, channels: readonly string[], server: string): boolean {
    if (this.shards.of(group).server !== server) return false;
    if (this.groupAdd !== RedisChannelLayer.prototype.groupAdd) return false;
    if (this.groupDiscard !== RedisChannelLayer.prototype.groupDiscard) return false;
    return channels.every((channel) => this.isLocal(channel));
  }

  attach(channel: string, receiver: ChannelReceiver): () => void {
    this.assertAttachable(channel);
    return this.local.attach(channel, receiver, this.inboxOf(nonLocalName(channel)));
  }

  async flush(): Promise<void> {
    this.assertOpen();
    await this.shards.deleteUnder(this.prefix);
    this.local.clear();
    this.groups.dropAll();
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
    for (const retry of this.restoring.values()) clearTimeout(retry);
    const inboxes = [...this.inboxes.values()];
    this.inboxes.clear();
    const error = new ChannelLayerClosed();
    for (const inbox of inboxes) inbox.receives.fail(error);
    this.local.clear(true);
    this.groups.clear();
    this.topics.clear();
    await this.shards.close();
  }

  protected isAttached(channel: string): boolean {
    return this.local.has(channel);
  }

  protected isReceiving(channel: string): boolean {
    return this.inboxes.get(nonLocalName(channel))?.receives.has(channel) === true;
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
      const attachment = this.local.get(member.channel);
      if (attachment !== undefined) {
        if (attachment.backlog !== null) attachment.backlog.push(message);
        else if (!this.local.deliver(attachment, message)) this.stats.groupSendSkippedFull++;
      } else if (member.expiresAt <= now) {
        group.members.delete(member.channel);
      } else if (!this.local.offer(member.channel, message, now + this.expiryMs)) {
        this.stats.groupSendSkippedFull++;
      }
    }
    if (group.members.size === 0) this.groups.drop(group);
  }

  // --- queues ----------------------------------------------------------------------------------

  private onInboxSignal(inbox: Inbox, signal: string): void {
    if (signal === 'w') {
      void inbox.drain();
      return;
    }
    const [op, group, channel] = signal.split(' ');
    if (!isValidGroupName(group) || channel === undefined || !this.isLocal(channel)) return;
    if (op === 'a') {
      this.groups
        .join(group, channel)
        .catch((error: unknown) =>
          this.logger.warn(`could not join ${channel} to ${group}: ${String(error)}`),
        );
    } else if (op === 'd') {
      this.groups.leave(group, channel);
    }
  }

  private inboxOf(name: string): Inbox {
    let inbox = this.inboxes.get(name);
    if (!inbox) {
      const shard = this.shards.of(name);
      inbox = new Inbox(name, shard, this.keysOf(shard), {
        isClosed: () => this.closed,
        local: this.local,
        logger: this.logger,
        open: (payload) => this.open(payload),
        settle: (idle) => this.settle(idle),
        route: (topic, to) => this.route(topic, to),
      });
      this.inboxes.set(name, inbox);
    }
    return inbox;
  }

  /** Forgets an inbox nobody here uses any more. */
  private settle(inbox: Inbox): void {
    if (!inbox.idle || this.inboxes.get(inbox.name) !== inbox) return;
    this.inboxes.delete(inbox.name);
    inbox.stopListening();
  }

  private route(topic: string, target: LocalGroup | Inbox | undefined): void {
    if (target) this.topics.set(topic, target);
    else this.topics.delete(topic);
  }

  /** Pushes one payload to ordinary members' queues: one script per shard holding some. */
  private async pushAll(channels: readonly string[], payload: string): Promise<number> {
    const byShard = new Map<RedisShard, { keys: string[]; args: Array<string | number> }>();
    for (const channel of channels) {
      const shard = this.shards.of(channel);
      let batch = byShard.get(shard);
      if (!batch) byShard.set(shard, (batch = { keys: [], args: [this.expiryMs, payload] }));
      const keys = this.keysOf(shard);
      batch.keys.push(keys.queue(channel));
      batch.args.push(this.capacityOf(channel), '', keys.inboxTopic(channel));
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
    return this.local.has(channel) || this.inboxes.get(nonLocalName(channel))?.isOwned === true;
  }

  private async notifyOwner(op: 'a' | 'd', group: string, channel: string): Promise<void> {
    const name = nonLocalName(channel);
    const shard = this.shards.of(name);
    await shard.publish(this.keysOf(shard).inboxTopic(name), `${op} ${group} ${channel}`);
  }

  private keysOf(shard: RedisShard): LayerKeys {
    return this.shardKeys[shard.index];
  }

  /**
   * Adds this process's memberships on `shard` again (Redis may have come back without them),
   * retrying with backoff until Redis takes them: the periodic refresh may be a minute away.
   */
  private restoreMemberships(shard: RedisShard, delayMs = 250): void {
    clearTimeout(this.restoring.get(shard));
    void this.groups.refresh(shard).then((done) => {
      if (done || this.closed) return;
      const retry = () => this.restoreMemberships(shard, Math.min(delayMs * 2, 5000));
      this.restoring.set(shard, setTimeout(retry, delayMs).unref());
    });
  }

  override onDeliveryGap(listener: DeliveryGapListener): void {
    this.gapListeners.push(listener);
  }

  /**
   * Tells the listeners of the groups on `shard`; one that throws is logged, not the shard's.
   * `back` names every group `lost` named too, though it may have lost its members here since.
   */
  private tellGap(shard: RedisShard, phase: keyof DeliveryGapListener): void {
    let groups = this.groups.on(shard);
    if (phase === 'lost') this.lostGroups.set(shard, groups);
    else {
      groups = [...new Set([...(this.lostGroups.get(shard) ?? []), ...groups])];
      this.lostGroups.delete(shard);
    }
    if (groups.length === 0) return;
    for (const listener of this.gapListeners) {
      try {
        listener[phase](groups);
      } catch (error) {
        this.logger.warn(`a delivery gap listener threw: ${String(error)}`);
      }
    }
  }

  /** Subscriptions are back: take what was queued while wakes could not reach us. */
  private resume(shard: RedisShard): void {
    for (const inbox of this.inboxes.values()) if (inbox.shard === shard) inbox.resume();
  }

  private tick(): void {
    const now = Date.now();
    this.local.sweep(now);
    this.groups.expire(now);
    if (now >= this.nextRefresh) {
      this.nextRefresh = now + this.refreshMs;
      void this.groups.refresh();
    }
  }

  // --- payloads --------------------------------------------------------------------------------

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
}
