import type { LogLevel } from '@nestjs/common';
import type { RateLimitOptions } from './chat/connection-policy';

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
  /** `RATE_LIMIT_PER_SECOND` (0 turns the limit off) and `RATE_LIMIT_BURST`; default 20 and 40. */
  rateLimit: RateLimitOptions | false;
  /** `HEARTBEAT_INTERVAL_MS`, default 30000; 0 turns heartbeats off. */
  heartbeatIntervalMs: number;
  /** `SHUTDOWN_TIMEOUT_MS`: how long a graceful shutdown may take before exit 1; default 10000. */
  shutdownTimeoutMs: number;
  /** `CHANNEL_LAYER`: `memory` (default; one process) or `redis` (many processes). */
  channelLayer: 'memory' | 'redis';
  /**
   * `REDIS_URL`: one URL, or several separated by commas to shard over; default
   * `redis://127.0.0.1:6379`. Read only with `CHANNEL_LAYER=redis`.
   */
  redisUrl: string;
  /** `REDIS_PREFIX`: key and channel prefix, so apps can share one Redis; default `asgi`. */
  redisPrefix: string;
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
          },
    heartbeatIntervalMs: integer(env, 'HEARTBEAT_INTERVAL_MS', 30_000, 0, 3_600_000),
    shutdownTimeoutMs: integer(env, 'SHUTDOWN_TIMEOUT_MS', 10_000, 1, 600_000),
    channelLayer,
    redisUrl: env.REDIS_URL || 'redis://127.0.0.1:6379',
    redisPrefix: env.REDIS_PREFIX || 'asgi',
  };
}

function boolean(env: NodeJS.ProcessEnv, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw new Error(`${name} must be true or false, got ${JSON.stringify(raw)}`);
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
