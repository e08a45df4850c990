import type { HandshakeRateOptions } from './admission.js';

/**
 * Who may connect, what a connection may do, and for how long: origins, connection caps,
 * handshake budgets, rates, deadlines, heartbeats. These options are part of `ChatModuleOptions`;
 * their defaults live here, beside the code that applies them.
 */

/** The per-connection rate limit, a token bucket. */
export interface RateLimitOptions {
  /**
   * Frames a connection may send per second, sustained. Every frame counts, bad ones and control
   * frames (ping, pong) included; a ping over the rate gets no pong.
   * @default 20
   */
  messagesPerSecond?: number;
  /**
   * Frames a connection may send at once before the rate applies: the bucket's size.
   * @default 40
   */
  burst?: number;
  /**
   * Payload bytes a connection may send per second, sustained, in frames of every kind. A frame
   * its byte budget cannot pay for is refused like one over the frame rate, before it is parsed.
   * @default 65536
   */
  bytesPerSecond?: number;
  /**
   * Payload bytes a connection may send at once before `bytesPerSecond` applies. Never less than
   * `maxFrameBytes`, so a frame of the largest size can always get through.
   * @default 262144, or `maxFrameBytes` when larger
   */
  burstBytes?: number;
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
  /**
   * Open sockets this module takes in all; past it a handshake gets HTTP 503 with `Retry-After`.
   * Keep it under the process's descriptor limit (`ulimit -n`) with room to spare for HTTP.
   * @default 10000
   */
  maxConnections?: number;
  /**
   * Open sockets one client address may hold (an IPv6 address counts by its /64); past it a
   * handshake gets HTTP 429. The same number bounds the TCP connections one peer may hold before
   * sending a request head (past it they are dropped). `0` turns both off. Behind a proxy, set
   * `trustProxyHops`, or every client shares the proxy's address.
   * @default 100
   */
  maxConnectionsPerAddress?: number;
  /**
   * Handshakes one client address may start, a token bucket; over it a handshake gets HTTP 429
   * with `Retry-After`. `false` turns it off.
   * @default { perSecond: 10, burst: 30 }
   */
  handshakeRate?: HandshakeRateOptions | false;
  /**
   * Milliseconds a TCP connection to the chat's HTTP server may take to send a whole request head
   * (a page request or a WebSocket upgrade); past it the connection is dropped. Applies to every
   * connection of that server, the host's own routes too. `0` turns it off.
   * @default 10000
   */
  handshakeTimeoutMs?: number;
  /**
   * Milliseconds a message may take to arrive once its first byte has (a fragmented message, or
   * a frame whose bytes trickle in); past it (checked every half of it) the socket is closed with
   * 1008. `0` turns it off.
   * @default 10000
   */
  messageTimeoutMs?: number;
  /**
   * Proxies in front of the server that each append the address they saw to `X-Forwarded-For`:
   * the client address of the per-address limits is then the entry the outermost of them wrote.
   * `0` uses the TCP peer's address, and ignores the header (a client can write anything there).
   * @default 0
   */
  trustProxyHops?: number;
}

/** A rate limit with every default applied. */
export type ResolvedRateLimit = Required<RateLimitOptions>;

/** {@link ConnectionPolicyOptions} with every default applied. */
export interface ResolvedConnectionPolicy {
  allowedOrigins: readonly string[];
  rejectMissingOrigin: boolean;
  rateLimit: ResolvedRateLimit | false;
  heartbeatIntervalMs: number;
  maxConnections: number;
  maxConnectionsPerAddress: number;
  handshakeRate: Required<HandshakeRateOptions> | false;
  handshakeTimeoutMs: number;
  messageTimeoutMs: number;
  trustProxyHops: number;
}

/** Defaults of {@link ConnectionPolicyOptions}. */
export const CONNECTION_POLICY_DEFAULTS = {
  allowedOrigins: [] as readonly string[],
  rejectMissingOrigin: false,
  rateLimit: {
    messagesPerSecond: 20,
    burst: 40,
    bytesPerSecond: 64 * 1024,
    burstBytes: 256 * 1024,
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
} as const;

/**
 * Applies defaults and checks values; a bad value throws a `TypeError` naming the option.
 * `maxFrameBytes` is the frame size limit in force, which `rateLimit.burstBytes` must cover.
 */
export function resolveConnectionPolicy(
  options: ConnectionPolicyOptions = {},
  maxFrameBytes: number = CONNECTION_POLICY_DEFAULTS.rateLimit.burstBytes,
): ResolvedConnectionPolicy {
  const defaults = CONNECTION_POLICY_DEFAULTS;
  const policy: ResolvedConnectionPolicy = {
    allowedOrigins: options.allowedOrigins ?? defaults.allowedOrigins,
    rejectMissingOrigin: options.rejectMissingOrigin ?? false,
    rateLimit:
      options.rateLimit === false ? false : resolveRateLimit(options.rateLimit, maxFrameBytes),
    heartbeatIntervalMs: options.heartbeatIntervalMs ?? defaults.heartbeatIntervalMs,
    maxConnections: options.maxConnections ?? defaults.maxConnections,
    maxConnectionsPerAddress: options.maxConnectionsPerAddress ?? defaults.maxConnectionsPerAddress,
    handshakeRate:
      options.handshakeRate === false
        ? false
        : {
            perSecond: options.handshakeRate?.perSecond ?? defaults.handshakeRate.perSecond,
            burst: options.handshakeRate?.burst ?? defaults.handshakeRate.burst,
          },
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? defaults.handshakeTimeoutMs,
    messageTimeoutMs: options.messageTimeoutMs ?? defaults.messageTimeoutMs,
    trustProxyHops: options.trustProxyHops ?? defaults.trustProxyHops,
  };
  nonNegative(policy.heartbeatIntervalMs, 'heartbeatIntervalMs');
  wholeNumber(policy.maxConnections, 'maxConnections', 1);
  wholeNumber(policy.maxConnectionsPerAddress, 'maxConnectionsPerAddress', 0);
  nonNegative(policy.handshakeTimeoutMs, 'handshakeTimeoutMs');
  nonNegative(policy.messageTimeoutMs, 'messageTimeoutMs');
  wholeNumber(policy.trustProxyHops, 'trustProxyHops', 0);
  if (policy.handshakeRate) {
    positive(policy.handshakeRate.perSecond, 'handshakeRate.perSecond');
    if (!(policy.handshakeRate.burst >= 1)) {
      throw new TypeError(
        `handshakeRate.burst must be at least 1, got ${policy.handshakeRate.burst}`,
      );
    }
  }
  return policy;
}

function resolveRateLimit(
  options: RateLimitOptions = {},
  maxFrameBytes: number,
): ResolvedRateLimit {
  const defaults = CONNECTION_POLICY_DEFAULTS.rateLimit;
  const resolved: ResolvedRateLimit = {
    messagesPerSecond: options.messagesPerSecond ?? defaults.messagesPerSecond,
    burst: options.burst ?? defaults.burst,
    bytesPerSecond: options.bytesPerSecond ?? defaults.bytesPerSecond,
    burstBytes: options.burstBytes ?? Math.max(defaults.burstBytes, maxFrameBytes),
    maxViolations: options.maxViolations ?? defaults.maxViolations,
    violationWindowMs: options.violationWindowMs ?? defaults.violationWindowMs,
  };
  positive(resolved.messagesPerSecond, 'rateLimit.messagesPerSecond');
  positive(resolved.burst, 'rateLimit.burst');
  positive(resolved.bytesPerSecond, 'rateLimit.bytesPerSecond');
  if (!(resolved.burstBytes >= maxFrameBytes)) {
    throw new TypeError(
      `rateLimit.burstBytes must be at least maxFrameBytes (${maxFrameBytes}), got ${String(resolved.burstBytes)}`,
    );
  }
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

function wholeNumber(value: number, name: string, min: number): void {
  if (!Number.isInteger(value) || value < min) {
    throw new TypeError(`${name} must be an integer >= ${min}, got ${String(value)}`);
  }
}

function nonNegative(value: number, name: string): void {
  if (typeof value !== 'number' || !(value >= 0) || !Number.isFinite(value)) {
    throw new TypeError(`${name} must be a finite number >= 0, got ${String(value)}`);
  }
}
