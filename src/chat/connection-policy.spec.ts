import { CONNECTION_POLICY_DEFAULTS, resolveConnectionPolicy } from './connection-policy';

describe('resolveConnectionPolicy', () => {
  it('applies the documented defaults', () => {
    expect(resolveConnectionPolicy({})).toEqual({
      allowedOrigins: [],
      rejectMissingOrigin: false,
      rateLimit: { messagesPerSecond: 20, burst: 40, maxViolations: 10, violationWindowMs: 10_000 },
      heartbeatIntervalMs: 30_000,
    });
    expect(CONNECTION_POLICY_DEFAULTS.rateLimit.burst).toBe(40);
  });

  it('fills a partial rate limit and keeps `false`', () => {
    expect(resolveConnectionPolicy({ rateLimit: { burst: 5 } }).rateLimit).toMatchObject({
      burst: 5,
      messagesPerSecond: 20,
    });
    expect(resolveConnectionPolicy({ rateLimit: false }).rateLimit).toBe(false);
  });

  it.each([
    [{ rateLimit: { messagesPerSecond: 0 } }, /messagesPerSecond/],
    [{ rateLimit: { burst: 0.5 } }, /burst/],
    [{ heartbeatIntervalMs: -1 }, /heartbeatIntervalMs/],
    [{ heartbeatIntervalMs: Infinity }, /heartbeatIntervalMs/],
  ])('refuses %j', (options, message) => {
    expect(() => resolveConnectionPolicy(options)).toThrow(message);
  });
});
