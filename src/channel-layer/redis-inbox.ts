import { Logger } from '@nestjs/common';
import { ChannelMessage } from './channel-layer.js';
import type { LocalChannels } from './redis-local-channels.js';
import { LayerKeys, POP, UNPOP } from './redis-scripts.js';
import { WaitingReceives } from './waiting-receives.js';
import { RedisShard } from '../redis/redis-shard.js';

/** How many queued messages a drain takes per round trip when it can use them all. */
const BATCH = 100;

/** What an inbox needs from its layer. */
export interface InboxHost {
  isClosed(): boolean;
  /** Where the messages of channels attached here, and held ones, go. */
  readonly local: LocalChannels;
  readonly logger: Logger;
  /** The message in a payload from Redis; undefined (and logged) if it can't be read. */
  open(payload: string): ChannelMessage | undefined;
  /** Called when the inbox may have become idle, so the layer may forget it. */
  settle(inbox: Inbox): void;
  /** Routes the messages of `topic` to the inbox, or stops (`undefined`). */
  route(topic: string, inbox: Inbox | undefined): void;
}

/**
 * A queue this process reads: one channel's, or the one every process-local channel under an
 * `x.y!` shares. It takes messages from Redis only while someone here wants them (an attached
 * channel, a waiting receive), one drain at a time, and listens for wakes meanwhile.
 */
export class Inbox {
  readonly kind = 'inbox';
  /** A queue of process-local channels: its entries say which channel each is for. */
  readonly processLocal: boolean;
  readonly key: string;
  readonly topic: string;
  /** The receives waiting on its channels, each tagged with `pops` when it started. */
  readonly receives: WaitingReceives<number>;
  private owned = false;
  private attached = 0;
  private listening = false;
  private draining: Promise<void> | null = null;
  /** A wake came during the drain: go round again. */
  private again = false;
  /** Successful POPs so far: a receive that saw none since it started never reached Redis. */
  private pops = 0;
  /**
   * The subscriber's life (`RedisShard.subscribedIn`) in which a POP sent while subscribed found
   * the queue empty, no wake having been let pass since; -1 when none did.
   */
  private emptyIn = -1;

  constructor(
    /** The channel, or the part of process-local names up to and including the `!`. */
    readonly name: string,
    readonly shard: RedisShard,
    keys: LayerKeys,
    private readonly host: InboxHost,
  ) {
    this.processLocal = name.endsWith('!');
    this.key = keys.queue(name);
    this.topic = keys.inboxTopic(name);
    this.receives = new WaitingReceives<number>(() => host.settle(this));
  }

  /** Made by this layer's `newChannel`: its channels are ours to fan out to. Kept while open. */
  get isOwned(): boolean {
    return this.owned;
  }

  /** Whether nothing here uses it any more: not owned, no drain, nothing attached or waiting. */
  get idle(): boolean {
    return !this.owned && !this.draining && this.attached === 0 && this.receives.size === 0;
  }

  /** Marks it as this layer's and listens, for wakes and for memberships other processes add. */
  own(): Promise<void> {
    this.owned = true;
    return this.listen();
  }

  /**
   * Whether the queue holds nothing that was not taken or woken for: it was found empty while
   * subscribed, every wake since was drained for, and the subscription has stood all along. Then
   * a channel attached now needs no catch-up: anything queued for it since wakes a drain.
   */
  get caughtUp(): boolean {
    return this.emptyIn !== -1 && this.emptyIn === this.shard.subscribedIn(this.topic);
  }

  /** Counts one attached channel; returns the function that stops counting it. */
  attach(): () => void {
    this.attached++;
    let attached = true;
    return () => {
      if (!attached) return;
      attached = false;
      this.attached--;
      this.host.settle(this);
    };
  }

  /** Waits for the next message of `channel`, one of this inbox's, taking it from Redis. */
  receive(channel: string, signal: AbortSignal | undefined): Promise<ChannelMessage> {
    const received = this.receives.wait(channel, this.pops, signal);
    void this.drain();
    return received;
  }

  /** Drains what was queued while wakes could not reach us (after an outage), if wanted. */
  resume(): void {
    this.emptyIn = -1; // wakes may have been missed until now
    if (this.demand() > 0) void this.drain();
  }

  /**
   * Takes queued messages while someone here wants them, then listens for wakes. One drain at a
   * time; a wake during a drain makes it go round again. Never rejects.
   */
  drain(): Promise<void> {
    if (this.draining) {
      this.again = true;
      return this.draining;
    }
    const draining = this.drainLoop().finally(() => {
      this.draining = null;
      this.host.settle(this);
    });
    this.draining = draining;
    return draining;
  }

  /** Stops listening; for an inbox the layer forgets. */
  stopListening(): void {
    if (!this.listening) return;
    this.listening = false;
    this.host.route(this.topic, undefined);
    this.shard.unsubscribe(this.topic);
  }

  private listen(): Promise<void> {
    if (!this.listening) {
      this.listening = true;
      this.host.route(this.topic, this);
    }
    return this.shard.subscribe(this.topic);
  }

  private async drainLoop(): Promise<void> {
    try {
      for (;;) {
        this.again = false;
        const want = this.demand();
        if (want === 0) this.emptyIn = -1; // a wake nobody here takes
        if (want === 0 || this.host.isClosed()) return;
        const subscribedIn = this.shard.subscribedIn(this.topic);
        const entries = (await this.shard.run(POP, [this.key], [want])) as string[];
        if (this.host.isClosed()) return;
        this.pops++;
        this.dispatch(entries);
        if (entries.length === want || this.again) continue;
        this.emptyIn = subscribedIn;
        // Empty. Subscribe, then look once more: a send between our pop and the subscription
        // woke nobody.
        if (!this.listening && this.demand() > 0) {
          await this.listen();
          continue;
        }
        return;
      }
    } catch (error) {
      if (this.host.isClosed()) return;
      // The receives that Redis never answered for must not hang on a Redis we can't reach;
      // those already waiting on a checked queue keep waiting through an outage.
      const pops = this.pops;
      this.receives.fail(error, (since) => since === pops);
    }
  }

  /** Hands out what a POP took: to attached channels, held, or to waiting receives. */
  private dispatch(entries: readonly string[]): void {
    let unclaimed: string[] | null = null;
    for (const entry of entries) {
      const first = entry.indexOf(':');
      const second = entry.indexOf(':', first + 1);
      const channel = this.processLocal ? this.name + entry.slice(first + 1, second) : this.name;
      const message = this.host.open(entry.slice(second + 1));
      if (message === undefined) continue;
      const attachment = this.host.local.get(channel);
      if (attachment !== undefined) {
        if (attachment.backlog !== null) attachment.backlog.push(message);
        else this.host.local.deliver(attachment, message);
      } else if (this.processLocal) {
        this.host.local.offer(channel, message, Number(entry.slice(0, first)));
      } else if (!this.receives.serve(channel, message)) {
        // Its receive was aborted meanwhile. Give the message back to the queue, where another
        // process may be waiting for it.
        (unclaimed ??= []).push(entry);
      }
    }
    if (unclaimed) {
      this.shard
        .run(UNPOP, [this.key], [this.topic, ...unclaimed])
        .catch((error: unknown) =>
          this.host.logger.warn(`lost ${unclaimed.length} message(s): ${String(error)}`),
        );
    }
  }

  private demand(): number {
    if (this.attached > 0) return BATCH;
    // Process-local queues mix channels: take what is there and sort it out here.
    if (this.processLocal) return this.receives.size > 0 ? BATCH : 0;
    return this.receives.size;
  }
}
