import type { ResolvedRateLimit } from './connection-policy';

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

/**
 * One connection's token bucket: `burst` tokens, refilled at `messagesPerSecond`; a frame takes
 * one. Refused frames are counted in a fixed window; too many and the client is closed. Five
 * numbers per connection and no timers: the bucket is refilled lazily when a frame arrives.
 */
export class RateLimiter {
  private tokens: number;
  private refilledAt: number;
  private violations = 0;
  private windowStart = 0;

  /** `now` is in milliseconds, from any monotonic clock (`performance.now()`). */
  constructor(
    private readonly limit: ResolvedRateLimit,
    now: number,
  ) {
    this.tokens = limit.burst;
    this.refilledAt = now;
  }

  /** Takes a token for one frame arriving at `now`. */
  take(now: number): RateVerdict {
    const { burst, messagesPerSecond } = this.limit;
    if (this.tokens < burst) {
      this.tokens = Math.min(
        burst,
        this.tokens + ((now - this.refilledAt) * messagesPerSecond) / 1000,
      );
    }
    this.refilledAt = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return RateVerdict.Allowed;
    }
    if (now - this.windowStart > this.limit.violationWindowMs) {
      this.windowStart = now;
      this.violations = 0;
    }
    this.violations++;
    return this.violations > this.limit.maxViolations ? RateVerdict.Exceeded : RateVerdict.Refused;
  }
}
