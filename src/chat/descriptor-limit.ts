import { readFileSync } from 'node:fs';

/**
 * The process's soft limit on open file descriptors (`ulimit -n`), where the platform tells
 * (Linux's /proc); undefined elsewhere.
 */
export function descriptorLimit(limits = '/proc/self/limits'): number | undefined {
  try {
    const line = readFileSync(limits, 'utf8')
      .split('\n')
      .find((entry) => entry.startsWith('Max open files'));
    const soft = line?.split(/\s{2,}/)[1];
    return soft === undefined || !/^\d+$/.test(soft) ? undefined : Number(soft);
  } catch {
    return undefined;
  }
}

/** Descriptors the default `maxConnections` leaves to HTTP: pages, `/health`, the API. */
export const DESCRIPTOR_HEADROOM = 512;

/** Descriptors no connection may take (the HTTP server's cap): files, Redis, logs. */
export const DESCRIPTOR_RESERVE = 64;
