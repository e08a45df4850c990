import type { ResolvedRateLimit } from './connection-policy.js';

/** What {@link RateLimiter.take} decided about one frame. */
export const RateVerdict = {
  /** Within the rate: handle the frame. */
  Allowed: 0,
  /** Over the rate: refuse the frame and tell the client. */
  Refused: 1,
  /** Over the rate too often: close the socket with 1008. */
  Exceeded: 2,
} as const;
export type RateVerdict = (typeof RateVerdict)[keyof typeof RateVerdict];

/** Which budget refused the last refused frame. */
export type RateLimitKind = 'frames' | 'bytes';

/**
 * One connection's two token buckets: frames (`burst`, refilled at `messagesPerSecond`) and
 * payload bytes (`burstBytes`, refilled at `bytesPerSecond`). A frame takes one frame token and
 * its size in byte tokens, or nothing when either bucket lacks them. Refused frames are counted in
 * a fixed window; too many and the client is closed. A handful of numbers per connection and no
 * timers: the buckets are refilled lazily when a frame arrives.
 */
export class RateLimiter {
  private frames: number;
  private bytes: number;
  private refilledAt: number;
  private violations = 0;
  private windowStart = 0;
  /** The budget that refused the last refused frame. */
  refusedBy: RateLimitKind = 'frames';

  /** `now` is in milliseconds, from any monotonic clock (`performance.now()`). */
  constructor(
    private readonly limit: ResolvedRateLimit,
    now: number,
  ) {
    this.frames = limit.burst;
    this.bytes = limit.burstBytes;
    this.refilledAt = now;
  }

  /** Takes the tokens for one frame of `size` payload bytes arriving at `now`. */
  take(now: number, size: number): RateVerdict {
    const { burst, messagesPerSecond, burstBytes, bytesPerSecond } = this.limit;
    const elapsed = now - this.refilledAt;
    this.refilledAt = now;
    if (this.frames < burst) {
      this.frames = Math.min(burst, this.frames + (elapsed * messagesPerSecond) / 1000);
    }
    if (this.bytes < burstBytes) {
      this.bytes = Math.min(burstBytes, this.bytes + (elapsed * bytesPerSecond) / 1000);
    }
    if (this.frames >= 1 && this.bytes >= size) {
      this.frames -= 1;
      this.bytes -= size;
      return RateVerdict.Allowed;
    }
    this.refusedBy = this.frames >= 1 ? 'bytes' : 'frames';
    if (now - this.windowStart > this.limit.violationWindowMs) {
      this.windowStart = now;
      this.violations = 0;
    }
    this.violations++;
    return this.violations > this.limit.maxViolations ? RateVerdict.Exceeded : RateVerdict.Refused;
  }
}
