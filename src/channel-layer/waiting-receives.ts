import { ChannelMessage } from './channel-layer.js';

interface Waiter<Tag> {
  readonly tag: Tag;
  resolve(message: ChannelMessage): void;
  reject(error: unknown): void;
}

/**
 * The receives waiting for a message, in one line per channel: a channel's are served in the order
 * they called `receive`. A receive whose signal aborts leaves its line at once and rejects with the
 * signal's reason. `Tag` is what the layer notes about each when it starts waiting.
 */
export class WaitingReceives<Tag = undefined> {
  private readonly lines = new Map<string, Array<Waiter<Tag>>>();
  private waiting = 0;

  /** @param onLeave runs after receives left their lines: served, aborted or failed. */
  constructor(private readonly onLeave: () => void = () => undefined) {}

  /** Receives waiting, over every channel. */
  get size(): number {
    return this.waiting;
  }

  /** Whether a receive is waiting on `channel`. */
  has(channel: string): boolean {
    return this.lines.has(channel);
  }

  /** Joins `channel`'s line; resolves with the message {@link serve} hands it. */
  wait(channel: string, tag: Tag, signal?: AbortSignal): Promise<ChannelMessage> {
    return new Promise<ChannelMessage>((resolve, reject) => {
      const waiter: Waiter<Tag> = { tag, resolve, reject };
      let line = this.lines.get(channel);
      if (!line) this.lines.set(channel, (line = []));
      line.push(waiter);
      this.waiting++;
      if (!signal) return;
      const onAbort = (): void => {
        if (this.remove(channel, waiter)) reject(signal.reason);
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
  }

  /** Hands `message` to the first receive waiting on `channel`; false when none is. */
  serve(channel: string, message: ChannelMessage): boolean {
    const line = this.lines.get(channel);
    const waiter = line?.shift();
    if (!line || !waiter) return false;
    if (line.length === 0) this.lines.delete(channel);
    this.waiting--;
    this.onLeave();
    waiter.resolve(message);
    return true;
  }

  /** Rejects with `error` the waiting receives whose tag `which` picks; all of them without it. */
  fail(error: unknown, which: (tag: Tag) => boolean = () => true): void {
    const failed: Array<Waiter<Tag>> = [];
    for (const [channel, line] of this.lines) {
      const kept = line.filter((waiter) => !which(waiter.tag));
      if (kept.length === line.length) continue;
      if (kept.length > 0) this.lines.set(channel, kept);
      else this.lines.delete(channel);
      for (const waiter of line) if (which(waiter.tag)) failed.push(waiter);
    }
    if (failed.length === 0) return;
    this.waiting -= failed.length;
    this.onLeave();
    for (const waiter of failed) waiter.reject(error);
  }

  private remove(channel: string, waiter: Waiter<Tag>): boolean {
    const line = this.lines.get(channel);
    const at = line ? line.indexOf(waiter) : -1;
    if (!line || at === -1) return false;
    line.splice(at, 1);
    if (line.length === 0) this.lines.delete(channel);
    this.waiting--;
    this.onLeave();
    return true;
  }
}
