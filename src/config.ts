import type { LogLevel } from '@nestjs/common';

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
}

const LEVELS: LogLevel[] = ['fatal', 'error', 'warn', 'log', 'debug', 'verbose'];

/** Reads and checks the environment; a bad value stops the app with a message saying which. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): AppConfig {
  const level = env.LOG_LEVEL ?? 'log';
  const upTo = LEVELS.indexOf(level as LogLevel);
  if (upTo === -1) throw new Error(`LOG_LEVEL must be one of ${LEVELS.join(', ')}`);
  return {
    port: integer(env, 'PORT', 8000, 0, 65535),
    host: env.HOST ?? '127.0.0.1',
    maxFrameBytes: integer(env, 'MAX_FRAME_BYTES', 256 * 1024, 1, 100 * 1024 * 1024),
    logLevels: LEVELS.slice(0, upTo + 1),
  };
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
