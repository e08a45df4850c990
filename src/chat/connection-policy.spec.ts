import { CONNECTION_POLICY_DEFAULTS, resolveConnectionPolicy } from './connection-policy.js';

describe('resolveConnectionPolicy', () => {
  it('applies the documented defaults', () => {
    expect(resolveConnectionPolicy({})).toEqual({
      allowedOrigins: [],
      rejectMissingOrigin: false,
      rateLimit: {
        messagesPerSecond: 20,
        burst: 40,
        bytesPerSecond: 65_536,
        burstBytes: 262_144,
        maxViolations: 10,
        violationWindowMs: 10_000,
      },
      heartbeatIntervalMs: 30_000,
      maxConnections: 10_000,
      maxConnectionsPerAddress: 100,
      handshakeRate: { perSecond: 10, burst: 30 },
      handshakeTimeoutMs: 10_000,
      messageTimeoutMs: 10_000,
      trustProxyHops: 0,
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

  it('lets a frame of the largest size through the byte budget', () => {
    expect(resolveConnectionPolicy({}, 1_048_576).rateLimit).toMatchObject({
      burstBytes: 1_048_576,
    });
    expect(() => resolveConnectionPolicy({ rateLimit: { burstBytes: 1000 } }, 2000)).toThrow(
      /burstBytes must be at least maxFrameBytes/,
    );
  });

  it.each([
    [{ rateLimit: { messagesPerSecond: 0 } }, /messagesPerSecond/],
    [{ rateLimit: { burst: 0.5 } }, /burst/],
    [{ heartbeatIntervalMs: -1 }, /heartbeatIntervalMs/],
    [{ heartbeatIntervalMs: Infinity }, /heartbeatIntervalMs/],
    [{ maxConnections: 0 }, /maxConnections/],
    [{ maxConnectionsPerAddress: 1.5 }, /maxConnectionsPerAddress/],
    [{ handshakeRate: { perSecond: 0 } }, /handshakeRate.perSecond/],
    [{ handshakeRate: { burst: 0 } }, /handshakeRate.burst/],
    [{ messageTimeoutMs: -1 }, /messageTimeoutMs/],
    [{ trustProxyHops: -1 }, /trustProxyHops/],
  ])('refuses %j', (options, message) => {
    expect(() => resolveConnectionPolicy(options)).toThrow(message);
  });
});
