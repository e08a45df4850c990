import type { LogLevel } from '@nestjs/common';
import type { ChatModuleOptions } from './chat/chat.options.js';
import type { RateLimitOptions } from './chat/connection-policy.js';

/** The bounds the environment sets; see the README's limits table. */
export type EnvLimits = Pick<
  ChatModuleOptions,
  | 'maxMessageBytes'
  | 'maxBufferedBytes'
  | 'maxTotalBufferedBytes'
  | 'maxUnfinishedBytes'
  | 'maxConnections'
  | 'maxConnectionsPerAddress'
  | 'handshakeRate'
  | 'handshakeTimeoutMs'
  | 'messageTimeoutMs'
  | 'trustProxyHops'
  | 'historyLimit'
  | 'historyBytes'
  | 'maxHistoryBytes'
  | 'maxRooms'
  | 'resendWindowMs'
  | 'maxResendIds'
>;

/** What the runnable app reads from its environment; the only place that reads process.env. */
export interface AppConfig {
  /** `PORT`, default 8000 (the seed's runserver port). */
  port: number;
  /** `HOST`, default 127.0.0.1. */
  host: string;
  /** `MAX_FRAME_BYTES`, default 262144. */
  maxFrameBytes: number;
  /** `LOG_LEVEL`: error, warn, log, debug or verbose; default log. */
  logLevels: LogLevel[];
  /** `LOG_FORMAT`: `text` (default) or `json` (one JSON object per line). */
  logFormat: 'text' | 'json';
  /** `ALLOWED_ORIGINS`, comma-separated; default none, i.e. the server's own host only. */
  allowedOrigins: string[];
  /** `REJECT_MISSING_ORIGIN`: `true` refuses handshakes without Origin; default false. */
  rejectMissingOrigin: boolean;
  /**
   * `RATE_LIMIT_PER_SECOND` (0 turns the limit off) and `RATE_LIMIT_BURST`, default 20 and 40;
   * `RATE_LIMIT_BYTES_PER_SECOND` and `RATE_LIMIT_BURST_BYTES`, default 65536 and 262144 (or
   * `MAX_FRAME_BYTES` when larger).
   */
  rateLimit: RateLimitOptions | false;
  /**
   * `MAX_MESSAGE_BYTES`, `MAX_BUFFERED_BYTES`, `MAX_TOTAL_BUFFERED_BYTES`, `MAX_UNFINISHED_BYTES`,
   * `MAX_CONNECTIONS`, `MAX_CONNECTIONS_PER_ADDRESS`,
   * `HANDSHAKES_PER_SECOND` (0 turns the handshake budget off) and `HANDSHAKE_BURST`,
   * `HANDSHAKE_TIMEOUT_MS`, `MESSAGE_TIMEOUT_MS`, `TRUST_PROXY_HOPS`, `HISTORY_LIMIT`,
   * `HISTORY_BYTES`, `MAX_HISTORY_BYTES`, `MAX_ROOMS`; unset ones take the module's defaults.
   */
  limits: EnvLimits;
  /** `HEARTBEAT_INTERVAL_MS`, default 30000; 0 turns heartbeats off. */
  heartbeatIntervalMs: number;
  /** `SHUTDOWN_TIMEOUT_MS`: how long a graceful shutdown may take before exit 1; default 10000. */
  shutdownTimeoutMs: number;
  /** `CHANNEL_LAYER`: `memory` (default; one process) or `redis` (many processes). */
  channelLayer: 'memory' | 'redis';
  /**
   * `REDIS_URL`: one URL, several separated by commas to shard over, or a Redis Cluster's seeds
   * as `redis+cluster://h1:p1,h2:p2`; default `redis://127.0.0.1:6379`. Read only with
   * `CHANNEL_LAYER=redis`.
   */
  redisUrl: string;
  /** `REDIS_PREFIX`: key and channel prefix, so apps can share one Redis; default `asgi`. */
  redisPrefix: string;
  /**
   * `INTERNAL_PORT`: the port `/metrics` and `/health/ready` are served on instead of `PORT`
   * (`0`: any free port); default unset, i.e. on `PORT`.
   */
  internalPort: number | undefined;
  /** `INTERNAL_HOST`: the address `INTERNAL_PORT` is bound to; default 127.0.0.1. */
  internalHost: string;
  /**
   * `ROOMS_API` (`false` turns `GET /api/rooms` off; default true) and `ROOMS_API_LIMIT`, the
   * most rooms it lists (default 100).
   */
  roomsApi: false | { limit: number };
}

const LEVELS: LogLevel[] = ['fatal', 'error', 'warn', 'log', 'debug', 'verbose'];

/** Reads and checks the environment; a bad value stops the app with a message saying which. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): AppConfig {
  const level = env.LOG_LEVEL ?? 'log';
  const upTo = LEVELS.indexOf(level as LogLevel);
  if (upTo === -1) throw new Error(`LOG_LEVEL must be one of ${LEVELS.join(', ')}`);
  const logFormat = env.LOG_FORMAT || 'text';
  if (logFormat !== 'text' && logFormat !== 'json') {
    throw new Error(`LOG_FORMAT must be text or json, got ${JSON.stringify(logFormat)}`);
  }
  const perSecond = integer(env, 'RATE_LIMIT_PER_SECOND', 20, 0, 1_000_000);
  const handshakesPerSecond = optional(env, 'HANDSHAKES_PER_SECOND', 0, 1_000_000);
  const channelLayer = env.CHANNEL_LAYER || 'memory';
  if (channelLayer !== 'memory' && channelLayer !== 'redis') {
    throw new Error(`CHANNEL_LAYER must be memory or redis, got ${JSON.stringify(channelLayer)}`);
  }
  return {
    port: integer(env, 'PORT', 8000, 0, 65535),
    host: env.HOST ?? '127.0.0.1',
    maxFrameBytes: integer(env, 'MAX_FRAME_BYTES', 256 * 1024, 1, 100 * 1024 * 1024),
    logLevels: LEVELS.slice(0, upTo + 1),
    logFormat,
    allowedOrigins: (env.ALLOWED_ORIGINS ?? '')
      .split(',')
      .map((origin) => origin.trim())
      .filter((origin) => origin !== ''),
    rejectMissingOrigin: boolean(env, 'REJECT_MISSING_ORIGIN', false),
    rateLimit:
      perSecond === 0
        ? false
        : {
            messagesPerSecond: perSecond,
            burst: integer(env, 'RATE_LIMIT_BURST', 2 * perSecond, 1, 1_000_000),
            bytesPerSecond: optional(env, 'RATE_LIMIT_BYTES_PER_SECOND', 1, 2 ** 40),
            burstBytes: optional(env, 'RATE_LIMIT_BURST_BYTES', 1, 2 ** 40),
          },
    limits: {
      maxMessageBytes: optional(env, 'MAX_MESSAGE_BYTES', 1, 100 * 1024 * 1024),
      maxBufferedBytes: optional(env, 'MAX_BUFFERED_BYTES', 1024, 2 ** 40),
      maxTotalBufferedBytes: optional(env, 'MAX_TOTAL_BUFFERED_BYTES', 1024, 2 ** 50),
      maxUnfinishedBytes: optional(env, 'MAX_UNFINISHED_BYTES', 1024, 2 ** 50),
      maxConnections: optional(env, 'MAX_CONNECTIONS', 1, 10_000_000),
      maxConnectionsPerAddress: optional(env, 'MAX_CONNECTIONS_PER_ADDRESS', 0, 10_000_000),
      handshakeRate:
        handshakesPerSecond === 0
          ? false
          : {
              perSecond: handshakesPerSecond,
              burst: optional(env, 'HANDSHAKE_BURST', 1, 10_000_000),
            },
      handshakeTimeoutMs: optional(env, 'HANDSHAKE_TIMEOUT_MS', 0, 3_600_000),
      messageTimeoutMs: optional(env, 'MESSAGE_TIMEOUT_MS', 0, 3_600_000),
      trustProxyHops: optional(env, 'TRUST_PROXY_HOPS', 0, 100),
      historyLimit: optional(env, 'HISTORY_LIMIT', 0, 1_000_000),
      historyBytes: optional(env, 'HISTORY_BYTES', 1, 2 ** 40),
      maxHistoryBytes: optional(env, 'MAX_HISTORY_BYTES', 1, 2 ** 40),
      maxRooms: optional(env, 'MAX_ROOMS', 1, 100_000_000),
      resendWindowMs: optional(env, 'RESEND_WINDOW_MS', 1, 86_400_000),
      maxResendIds: optional(env, 'MAX_RESEND_IDS', 0, 1_000_000),
    },
    heartbeatIntervalMs: integer(env, 'HEARTBEAT_INTERVAL_MS', 30_000, 0, 3_600_000),
    shutdownTimeoutMs: integer(env, 'SHUTDOWN_TIMEOUT_MS', 10_000, 1, 600_000),
    channelLayer,
    redisUrl: env.REDIS_URL || 'redis://127.0.0.1:6379',
    redisPrefix: env.REDIS_PREFIX || 'asgi',
    internalPort:
      env.INTERNAL_PORT === undefined || env.INTERNAL_PORT === ''
        ? undefined
        : integer(env, 'INTERNAL_PORT', 0, 0, 65535),
    internalHost: env.INTERNAL_HOST || '127.0.0.1',
    roomsApi: boolean(env, 'ROOMS_API', true)
      ? { limit: integer(env, 'ROOMS_API_LIMIT', 100, 1, 100_000) }
      : false,
  };
}

function boolean(env: NodeJS.ProcessEnv, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw new Error(`${name} must be true or false, got ${JSON.stringify(raw)}`);
}

/** An integer setting, or undefined when unset (the module's default applies). */
function optional(
  env: NodeJS.ProcessEnv,
  name: string,
  min: number,
  max: number,
): number | undefined {
  const raw = env[name];
  return raw === undefined || raw === '' ? undefined : integer(env, name, 0, min, max);
}

function integer(
  env: NodeJS.ProcessEnv,
  name: string,
  fallback: number,
  min: number,
  max: number,
): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return value;
}
