import { Logger } from '@nestjs/common';
import { ChannelMessage, ChannelReceiver } from './channel-layer.js';
import { Inbox } from './redis-inbox.js';

/** A channel attached here. */
export interface Attachment {
  readonly receiver: ChannelReceiver;
  /** Messages that arrived while the channel's queue was being drained; null once live. */
  backlog: ChannelMessage[] | null;
  /** Settles when the backlog has been delivered. */
  ready: Promise<void>;
}

/** A process-local message this process took from Redis (or got by fan-out), not yet received. */
interface Held {
  readonly message: ChannelMessage;
  readonly expiresAt: number;
}

/** What the local channels need from their layer. */
export interface LocalChannelsHost {
  readonly expiryMs: number;
  readonly logger: Logger;
  capacityOf(channel: string): number;
  /** Hands `message` to a receive waiting on `channel`; false when none is. */
  serveWaiting(channel: string, message: ChannelMessage): boolean;
}

/**
 * This process's end of the channels it reads: the receivers attached here, and the messages of
 * process-local channels it holds for their next receive or attach, within capacity and expiry.
 */
export class LocalChannels {
  private readonly attachments = new Map<string, Attachment>();
  private readonly held = new Map<string, Held[]>();

  constructor(private readonly host: LocalChannelsHost) {}

  get(channel: string): Attachment | undefined {
    return this.attachments.get(channel);
  }

  has(channel: string): boolean {
    return this.attachments.has(channel);
  }

  /**
   * Attaches `receiver` to `channel`, one of `inbox`'s: it gets what is held here first, then
   * what the inbox's queue holds (no POP when the inbox is caught up), then live messages.
   * Returns the function that detaches it.
   */
  attach(channel: string, receiver: ChannelReceiver, inbox: Inbox): () => void {
    const backlog: ChannelMessage[] = [];
    for (let next = this.take(channel); next; next = this.take(channel)) backlog.push(next);
    const attachment: Attachment = { receiver, backlog, ready: Promise.resolve() };
    this.attachments.set(channel, attachment);
    const release = inbox.attach();
    attachment.ready = this.catchUp(channel, inbox, attachment);
    return () => {
      if (this.attachments.get(channel) !== attachment) return;
      this.attachments.delete(channel);
      release();
    };
  }

  /** Calls a receiver from a Redis event, where a throw would have no caller to reach. */
  deliver(attachment: Attachment, message: ChannelMessage): boolean {
    try {
      return attachment.receiver(message) !== false;
    } catch (error) {
      this.host.logger.error(`a channel receiver threw: ${String(error)}`);
      return true;
    }
  }

  /** Hands a message to a waiting receive, or holds it for the next one. False when full. */
  offer(channel: string, message: ChannelMessage, expiresAt: number): boolean {
    if (this.host.serveWaiting(channel, message)) return true;
    let kept = this.held.get(channel);
    if (!kept) this.held.set(channel, (kept = []));
    if (kept.length >= this.host.capacityOf(channel)) return false;
    kept.push({ message, expiresAt });
    return true;
  }

  /** The next unexpired message held for `channel`. */
  take(channel: string): ChannelMessage | undefined {
    const kept = this.held.get(channel);
    if (!kept) return undefined;
    const now = Date.now();
    let found: ChannelMessage | undefined;
    while (kept.length > 0 && !found) {
      const head = kept.shift() as Held;
      if (head.expiresAt > now) found = head.message;
    }
    if (kept.length === 0) this.held.delete(channel);
    return found;
  }

  /** Drops held messages past their expiry. */
  sweep(now: number): void {
    for (const [channel, kept] of this.held) {
      while (kept.length > 0 && kept[0].expiresAt <= now) kept.shift();
      if (kept.length === 0) this.held.delete(channel);
    }
  }

  /** Drops every held message; with `attachments`, forgets the receivers too. */
  clear(attachments = false): void {
    this.held.clear();
    if (attachments) this.attachments.clear();
  }

  private async catchUp(channel: string, inbox: Inbox, attachment: Attachment): Promise<void> {
    if (!inbox.caughtUp) await inbox.drain();
    const backlog = attachment.backlog ?? [];
    attachment.backlog = null;
    if (this.attachments.get(channel) !== attachment) {
      // Detached meanwhile: keep them for a later receive or attach.
      const expiresAt = Date.now() + this.host.expiryMs;
      if (inbox.processLocal) {
        for (const message of backlog) this.offer(channel, message, expiresAt);
      }
      return;
    }
    for (const message of backlog) this.deliver(attachment, message);
  }
}
