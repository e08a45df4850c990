/**
 * What a connection may do, and for how long it may be silent: origins, rate, heartbeats. These
 * options are part of `ChatModuleOptions`; their defaults live here, beside the code that applies
 * them.
 */

/** The per-connection rate limit, a token bucket. */
export interface RateLimitOptions {
  /**
   * Frames a connection may send per second, sustained. Every frame counts, bad ones included.
   * @default 20
   */
  messagesPerSecond?: number;
  /**
   * Frames a connection may send at once before the rate applies: the bucket's size.
   * @default 40
   */
  burst?: number;
  /**
   * Refused frames within `violationWindowMs` after which the socket is closed with 1008. Each
   * refused frame is answered with a `rate_limited` error frame until then.
   * @default 10
   */
  maxViolations?: number;
  /**
   * The window, in milliseconds, over which refused frames are counted.
   * @default 10000
   */
  violationWindowMs?: number;
}

/** Origins, rate limit and heartbeats; part of `ChatModuleOptions`. */
export interface ConnectionPolicyOptions {
  /**
   * Origins whose pages may open a socket (Channels' `AllowedHostsOriginValidator`); a handshake
   * from any other origin is refused with HTTP 403. Each entry is a full origin
   * (`https://chat.example.com`), a host (`chat.example.com`, any port; `chat.example.com:8443`,
   * that port), a domain and its subdomains (`.example.com`), or `*` for any origin. Empty or
   * absent: only the server's own host, i.e. the Origin's host must equal the request's `Host`.
   * @default [] (same host only)
   */
  allowedOrigins?: readonly string[];
  /**
   * Refuse (HTTP 403) handshakes without an `Origin` header. Browsers always send one; bots and
   * CLIs usually don't, so they are allowed by default.
   * @default false
   */
  rejectMissingOrigin?: boolean;
  /**
   * The per-connection rate limit, or `false` for none.
   * @default { messagesPerSecond: 20, burst: 40, maxViolations: 10, violationWindowMs: 10000 }
   */
  rateLimit?: RateLimitOptions | false;
  /**
   * Milliseconds between pings. A socket that has not answered the previous ping by the next one
   * is terminated (a half-open TCP connection, a vanished phone), which frees its group
   * membership. `0` disables heartbeats.
   * @default 30000
   */
  heartbeatIntervalMs?: number;
}

/** A rate limit with every default applied. */
export type ResolvedRateLimit = Required<RateLimitOptions>;

/** {@link ConnectionPolicyOptions} with every default applied. */
export interface ResolvedConnectionPolicy {
  allowedOrigins: readonly string[];
  rejectMissingOrigin: boolean;
  rateLimit: ResolvedRateLimit | false;
  heartbeatIntervalMs: number;
}

/** Defaults of {@link ConnectionPolicyOptions}. */
export const CONNECTION_POLICY_DEFAULTS = {
  allowedOrigins: [] as readonly string[],
  rejectMissingOrigin: false,
  rateLimit: { messagesPerSecond: 20, burst: 40, maxViolations: 10, violationWindowMs: 10_000 },
  heartbeatIntervalMs: 30_000,
} as const;

/** Applies defaults and checks values; a bad value throws a `TypeError` naming the option. */
export function resolveConnectionPolicy(
  options: ConnectionPolicyOptions = {},
): ResolvedConnectionPolicy {
  const heartbeatIntervalMs =
    options.heartbeatIntervalMs ?? CONNECTION_POLICY_DEFAULTS.heartbeatIntervalMs;
  nonNegative(heartbeatIntervalMs, 'heartbeatIntervalMs');
  return {
    allowedOrigins: options.allowedOrigins ?? CONNECTION_POLICY_DEFAULTS.allowedOrigins,
    rejectMissingOrigin: options.rejectMissingOrigin ?? false,
    rateLimit: options.rateLimit === false ? false : resolveRateLimit(options.rateLimit),
    heartbeatIntervalMs,
  };
}

function resolveRateLimit(options: RateLimitOptions = {}): ResolvedRateLimit {
  const defaults = CONNECTION_POLICY_DEFAULTS.rateLimit;
  const resolved: ResolvedRateLimit = {
    messagesPerSecond: options.messagesPerSecond ?? defaults.messagesPerSecond,
    burst: options.burst ?? defaults.burst,
    maxViolations: options.maxViolations ?? defaults.maxViolations,
    violationWindowMs: options.violationWindowMs ?? defaults.violationWindowMs,
  };
  positive(resolved.messagesPerSecond, 'rateLimit.messagesPerSecond');
  positive(resolved.burst, 'rateLimit.burst');
  positive(resolved.maxViolations, 'rateLimit.maxViolations');
  positive(resolved.violationWindowMs, 'rateLimit.violationWindowMs');
  if (resolved.burst < 1) throw new TypeError('rateLimit.burst must be at least 1');
  return resolved;
}

function positive(value: number, name: string): void {
  if (typeof value !== 'number' || !(value > 0)) {
    throw new TypeError(`${name} must be a positive number, got ${String(value)}`);
  }
}

function nonNegative(value: number, name: string): void {
  if (typeof value !== 'number' || !(value >= 0) || !Number.isFinite(value)) {
    throw new TypeError(`${name} must be a finite number >= 0, got ${String(value)}`);
  }
}
