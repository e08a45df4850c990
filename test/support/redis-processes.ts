import { ChildProcess, spawn } from 'node:child_process';
import { Redis } from 'ioredis';
import { waitFor } from '../channel-layer.conformance.js';

/**
 * Starts `redis-server` with `args` (a server, a cluster node, a sentinel); resolves with the
 * process once its log matches `ready`, rejects with that log if it exits or stays silent 5 s.
 */
export function startRedisServer(
  args: string[],
  ready = /Ready to accept connections/,
  binary = 'redis-server',
): Promise<ChildProcess> {
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(
      () => reject(new Error(`redis-server did not start:\n${output}`)),
      5000,
    );
    child.stdout?.on('data', (chunk: Buffer) => {
      if (output.length < 20_000) output += String(chunk);
      if (ready.test(output)) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited with ${code}:\n${output}`));
    });
  });
}

/** Runs `call` on a connection of its own to the Redis (or sentinel) on 127.0.0.1:`port`. */
export async function onRedis<T>(port: number, call: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0 });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    return await call(redis);
  } finally {
    redis.disconnect();
  }
}

/**
 * Takes Redis user `user`'s pub/sub rights away (`ACL SETUSER <user> resetchannels`) on the
 * Redis at `port`, and resolves once its subscribers are connected again without subscriptions:
 * Redis 7 drops them, they reconnect at once, and every SUBSCRIBE is refused until the rights are
 * back (`allchannels`), while the user's other connections go on.
 */
export async function deafen(port: number, user: string): Promise<void> {
  const connections = async (): Promise<string[]> =>
    String(await onRedis(port, (redis) => redis.call('CLIENT', 'LIST')))
      .split('\n')
      .filter((line) => line.includes(` user=${user} `));
  const before = (await connections()).length;
  await onRedis(port, (redis) => redis.call('ACL', 'SETUSER', user, 'resetchannels'));
  await waitFor(async () => {
    const now = await connections();
    return now.length === before && now.every((line) => / sub=0 /.test(line));
  });
}
