import type { Cluster, Redis } from 'ioredis';
import { ChannelLayerUnavailable } from '../channel-layer/channel-layer.errors.js';

/** Connection state of one client: has it ever been ready, and is it recovering now? */
export class Link {
  everReady: boolean;
  private down = false;
  private readonly firstReady: Promise<void>;

  constructor(private readonly redis: Redis | Cluster) {
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

  /** Lost since it was last ready. */
  get isDown(): boolean {
    return this.down;
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

/** Closes `redis`, waiting (at most a second) for its socket to end. */
export function disconnect(redis: Redis | Cluster): Promise<void> {
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
