import { RateLimiter, RateVerdict } from './rate-limiter.js';

const limit = {
  messagesPerSecond: 10,
  burst: 5,
  bytesPerSecond: 1000,
  burstBytes: 1_000_000,
  maxViolations: 3,
  violationWindowMs: 1000,
};

function takeMany(limiter: RateLimiter, count: number, now: number): RateVerdict[] {
  return Array.from({ length: count }, () => limiter.take(now, 1));
}

describe('RateLimiter (token bucket)', () => {
  it('allows a burst of `burst` frames at once, then refuses', () => {
    const limiter = new RateLimiter(limit, 0);
    expect(takeMany(limiter, 5, 0)).toEqual(Array(5).fill(RateVerdict.Allowed));
    expect(limiter.take(0, 1)).toBe(RateVerdict.Refused);
  });

  it('refills at messagesPerSecond, never above burst', () => {
    const limiter = new RateLimiter(limit, 0);
    takeMany(limiter, 5, 0);
    expect(limiter.take(100, 1)).toBe(RateVerdict.Allowed); // 100 ms at 10/s: one token
    expect(limiter.take(100, 1)).toBe(RateVerdict.Refused);
    expect(takeMany(limiter, 6, 60_000)).toEqual([
      ...Array(5).fill(RateVerdict.Allowed),
      RateVerdict.Refused,
    ]);
  });

  it('sustains exactly the rate', () => {
    const limiter = new RateLimiter(limit, 0);
    takeMany(limiter, 5, 0);
    const verdicts = Array.from({ length: 50 }, (_, i) => limiter.take((i + 1) * 100, 1));
    expect(verdicts.every((verdict) => verdict === RateVerdict.Allowed)).toBe(true);
  });

  it('says Exceeded after more than maxViolations refusals within the window', () => {
    const limiter = new RateLimiter(limit, 0);
    takeMany(limiter, 5, 0);
    expect(takeMany(limiter, 4, 10)).toEqual([
      RateVerdict.Refused,
      RateVerdict.Refused,
      RateVerdict.Refused,
      RateVerdict.Exceeded,
    ]);
  });

  it('forgets refusals once the window has passed', () => {
    const limiter = new RateLimiter(limit, 0);
    takeMany(limiter, 5, 0);
    expect(takeMany(limiter, 3, 10)).toEqual(Array(3).fill(RateVerdict.Refused));
    // 1.5 s later: the bucket is full again and the window has restarted.
    takeMany(limiter, 5, 1510);
    expect(takeMany(limiter, 4, 1510)).toEqual([
      RateVerdict.Refused,
      RateVerdict.Refused,
      RateVerdict.Refused,
      RateVerdict.Exceeded,
    ]);
  });

  describe('bytes', () => {
    const bytes = { ...limit, burst: 1000, messagesPerSecond: 1000, burstBytes: 4000 };

    it('refuses a frame its byte budget cannot pay for, and says the bytes refused it', () => {
      const limiter = new RateLimiter(bytes, 0);
      expect(limiter.take(0, 3000)).toBe(RateVerdict.Allowed);
      expect(limiter.take(0, 2000)).toBe(RateVerdict.Refused);
      expect(limiter.refusedBy).toBe('bytes');
      expect(limiter.take(0, 1000)).toBe(RateVerdict.Allowed);
    });

    it('refills bytes at bytesPerSecond, never above burstBytes', () => {
      const limiter = new RateLimiter(bytes, 0);
      expect(limiter.take(0, 4000)).toBe(RateVerdict.Allowed);
      expect(limiter.take(500, 600)).toBe(RateVerdict.Refused); // 500 ms at 1000 B/s: 500 B
      expect(limiter.take(1000, 1000)).toBe(RateVerdict.Allowed);
      expect(limiter.take(600_000, 4000)).toBe(RateVerdict.Allowed);
      expect(limiter.take(600_000, 1)).toBe(RateVerdict.Refused);
    });

    it('takes no frame token for a frame the bytes refused', () => {
      const limiter = new RateLimiter({ ...bytes, burst: 1, burstBytes: 10 }, 0);
      expect(limiter.take(0, 11)).toBe(RateVerdict.Refused);
      expect(limiter.take(0, 10)).toBe(RateVerdict.Allowed);
      expect(limiter.take(0, 0)).toBe(RateVerdict.Refused);
      expect(limiter.refusedBy).toBe('frames');
    });
  });
});
