import { Inject, Injectable, Optional } from '@nestjs/common';
import { BaseChannelLayer } from './base-channel-layer.js';
import {
  ChannelLayerOptions,
  ChannelMessage,
  ChannelReceiver,
  ReceiveOptions,
} from './channel-layer.js';
import { ChannelFull, ChannelLayerClosed } from './channel-layer.errors.js';
import { assertChannelName, assertGroupName, nonLocalName } from './channel-names.js';
import { freezeCopy } from './frozen-message.js';
import { WaitingReceives } from './waiting-receives.js';

/** Options of the in-memory layer. */
export interface InMemoryChannelLayerOptions extends ChannelLayerOptions {
  /**
   * Milliseconds since the epoch; swap it in tests to drive expiry without sleeping.
   * @default Date.now
   */
  clock?: () => number;
}

/** DI token for {@link InMemoryChannelLayerOptions}, when the layer is built by Nest. */
export const IN_MEMORY_CHANNEL_LAYER_OPTIONS = Symbol('IN_MEMORY_CHANNEL_LAYER_OPTIONS');

interface Queued {
  readonly message: ChannelMessage;
  readonly expiresAt: number;
}

/** A channel's push delivery; `receiver` is cleared when it is detached. */
interface Attachment {
  readonly channel: string;
  receiver: ChannelReceiver | undefined;
}

/** A group's members as groupSend walks them: attached ones by attachment, the rest by name. */
interface FanOut {
  readonly attached: Attachment[];
  readonly queued: string[];
}

/**
 * The default layer, for one process (Channels' `InMemoryChannelLayer`, which its docs keep for
 * development; this one is fit for a single-process deployment: bounded, expiring, push-delivered).
 */
@Injectable()
export class InMemoryChannelLayer extends BaseChannelLayer {
  private readonly now: () => number;
  /** Unread messages per channel, oldest first; a channel with none has no entry. */
  private readonly queues = new Map<string, Queued[]>();
  private readonly receives = new WaitingReceives();
  /** Unread messages per capacity key: process-local channels share their non-local part's. */
  private readonly pending = new Map<string, number>();
  /** Attached channels; each attachment's receiver is set while it is here. */
  private readonly receivers = new Map<string, Attachment>();
  /** group → (channel → membership expiry, ms). */
  private readonly groups = new Map<string, Map<string, number>>();
  /**
   * Each group's fan-out, built on its first groupSend and dropped when its members change: a
   * send to a steady room is a walk over an array of attachments, with no lookup per member. A
   * member attached or detached since takes the slow path of `sendToMember`, so attaching never
   * has to find the fan-outs that list a channel.
   */
  private readonly fanOuts = new Map<string, FanOut>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    @Optional() @Inject(IN_MEMORY_CHANNEL_LAYER_OPTIONS) options: InMemoryChannelLayerOptions = {},
  ) {
    super(options);
    this.now = options.clock ?? Date.now;
    // Lazy expiry covers correctness; the sweep only bounds memory of channels nobody reads.
    const period = Math.min(Math.max(Math.min(this.expiryMs, this.groupExpiryMs), 1000), 60_000);
    this.sweeper = setInterval(() => this.sweep(), period).unref();
  }

  async send(channel: string, message: ChannelMessage): Promise<void> {
    this.assertOpen();
    assertChannelName(channel);
    if (!this.deliver(channel, freezeCopy(message), this.now())) throw new ChannelFull(channel);
  }

  async receive(channel: string, options: ReceiveOptions = {}): Promise<ChannelMessage> {
    this.assertReceivable(channel, options.signal);
    return (
      this.shift(channel, this.now()) ?? this.receives.wait(channel, undefined, options.signal)
    );
  }

  async newChannel(prefix = 'specific'): Promise<string> {
    return this.newChannelName(prefix);
  }

  async groupAdd(group: string, channel: string): Promise<void> {
    this.assertOpen();
    assertGroupName(group);
    assertChannelName(channel);
    let members = this.groups.get(group);
    if (!members) this.groups.set(group, (members = new Map()));
    if (!members.has(channel)) this.fanOuts.delete(group);
    members.set(channel, this.now() + this.groupExpiryMs);
  }

  async groupDiscard(group: string, channel: string): Promise<void> {
    assertGroupName(group);
    assertChannelName(channel);
    const members = this.groups.get(group);
    if (!members?.delete(channel)) return;
    this.fanOuts.delete(group);
    if (members.size === 0) this.groups.delete(group);
  }

  async groupChannels(group: string): Promise<string[]> {
    this.assertOpen();
    assertGroupName(group);
    const now = this.now();
    const live: string[] = [];
    for (const [channel, expiresAt] of this.groups.get(group) ?? []) {
      if (expiresAt > now || this.receivers.has(channel)) live.push(channel);
    }
    return live;
  }

  /** How many groups have members; for metrics. */
  get groupCount(): number {
    return this.groups.size;
  }

  async groupSend(group: string, message: ChannelMessage): Promise<void> {
    this.assertOpen();
    assertGroupName(group);
    const members = this.groups.get(group);
    if (!members) return;
    // One frozen copy for every member: receivers share it safely, and consumers can memoize
    // their serialization on its identity.
    const frozen = freezeCopy(message);
    let fanOut = this.fanOuts.get(group);
    if (!fanOut) this.fanOuts.set(group, (fanOut = this.fanOutOf(members)));
    const now = this.now();
    for (const attachment of fanOut.attached) {
      const receiver = attachment.receiver;
      if (!receiver) this.sendToMember(group, members, attachment.channel, frozen, now);
      else if (receiver(frozen) === false) this.stats.groupSendSkippedFull++;
    }
    for (const channel of fanOut.queued) this.sendToMember(group, members, channel, frozen, now);
    if (members.size === 0) this.groups.delete(group);
  }

  private fanOutOf(members: Map<string, number>): FanOut {
    const fanOut: FanOut = { attached: [], queued: [] };
    for (const channel of members.keys()) {
      const attachment = this.receivers.get(channel);
      if (attachment) fanOut.attached.push(attachment);
      else fanOut.queued.push(channel);
    }
    return fanOut;
  }

  /** One member the fan-out has no live receiver for: pushed if attached since, else queued. */
  private sendToMember(
    group: string,
    members: Map<string, number>,
    channel: string,
    message: ChannelMessage,
    now: number,
  ): void {
    const expiresAt = members.get(channel);
    if (expiresAt === undefined) return; // discarded by a receiver of this very send
    const receiver = this.receivers.get(channel)?.receiver;
    if (receiver) {
      if (receiver(message) === false) this.stats.groupSendSkippedFull++;
    } else if (expiresAt <= now) {
      members.delete(channel);
      this.fanOuts.delete(group);
    } else if (!this.enqueue(channel, message, now)) {
      this.stats.groupSendSkippedFull++;
    }
  }

  attach(channel: string, receiver: ChannelReceiver): () => void {
    this.assertAttachable(channel);
    const attachment: Attachment = { channel, receiver };
    this.receivers.set(channel, attachment);
    for (let next = this.shift(channel, this.now()); next; next = this.shift(channel, this.now())) {
      receiver(next);
    }
    return () => {
      if (this.receivers.get(channel) !== attachment) return;
      attachment.receiver = undefined;
      this.receivers.delete(channel);
    };
  }

  async flush(): Promise<void> {
    this.assertOpen();
    this.queues.clear();
    this.pending.clear();
    this.groups.clear();
    this.fanOuts.clear();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweeper);
    this.receives.fail(new ChannelLayerClosed());
    this.queues.clear();
    this.pending.clear();
    this.receivers.clear();
    this.groups.clear();
    this.fanOuts.clear();
  }

  private deliver(channel: string, message: ChannelMessage, now: number): boolean {
    const receiver = this.receivers.get(channel)?.receiver;
    if (receiver) return receiver(message) !== false;
    return this.enqueue(channel, message, now);
  }

  private enqueue(channel: string, message: ChannelMessage, now: number): boolean {
    if (this.receives.serve(channel, message)) return true;
    const key = nonLocalName(channel);
    const limit = this.capacityOf(channel);
    if ((this.pending.get(key) ?? 0) >= limit) {
      // Expired messages still count until swept; sweep before refusing.
      this.sweep();
      if ((this.pending.get(key) ?? 0) >= limit) return false;
    }
    let queue = this.queues.get(channel);
    if (!queue) this.queues.set(channel, (queue = []));
    queue.push({ message, expiresAt: now + this.expiryMs });
    this.pending.set(key, (this.pending.get(key) ?? 0) + 1);
    return true;
  }

  /** The next unexpired message of `channel`, dropping expired ones on the way. */
  private shift(channel: string, now: number): ChannelMessage | undefined {
    const queue = this.queues.get(channel);
    if (!queue) return undefined;
    let found: ChannelMessage | undefined;
    let taken = 0;
    while (queue.length > 0 && !found) {
      const head = queue.shift() as Queued;
      taken++;
      if (head.expiresAt > now) found = head.message;
    }
    if (queue.length === 0) this.queues.delete(channel);
    if (taken > 0) this.release(channel, taken);
    return found;
  }

  private release(channel: string, count: number): void {
    const key = nonLocalName(channel);
    const left = (this.pending.get(key) ?? 0) - count;
    if (left > 0) this.pending.set(key, left);
    else this.pending.delete(key);
  }

  private sweep(): void {
    const now = this.now();
    for (const [channel, queue] of this.queues) {
      const live = queue.filter((queued) => queued.expiresAt > now);
      if (live.length === queue.length) continue;
      this.release(channel, queue.length - live.length);
      if (live.length > 0) this.queues.set(channel, live);
      else this.queues.delete(channel);
    }
    for (const [group, members] of this.groups) {
      for (const [channel, expiresAt] of members) {
        if (expiresAt <= now && !this.receivers.has(channel)) {
          members.delete(channel);
          this.fanOuts.delete(group);
        }
      }
      if (members.size === 0) this.groups.delete(group);
    }
  }

  protected isAttached(channel: string): boolean {
    return this.receivers.has(channel);
  }

  protected isReceiving(channel: string): boolean {
    return this.receives.has(channel);
  }
}
