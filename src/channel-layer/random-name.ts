import { randomBytes } from 'node:crypto';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** Random bytes drawn 4 KiB at a time: a `randomBytes` call per ~340 names, not per name. */
let pool = Buffer.alloc(0);
let poolAt = 0;

/**
 * `length` random ASCII letters: the process-local part of channel names and the ids of layer and
 * store instances, valid in every name Channels allows.
 */
export function randomName(length: number): string {
  if (poolAt + length > pool.length) {
    pool = randomBytes(4096);
    poolAt = 0;
  }
  let name = '';
  for (let i = 0; i < length; i++) name += ALPHABET[pool[poolAt++] % ALPHABET.length];
  return name;
}
