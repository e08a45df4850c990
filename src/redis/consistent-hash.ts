/**
 * Where a name lives when a store spreads over several Redis hosts. Like channels_redis'
 * `consistent_hash`: the CRC-32 of the name, cut to 12 bits (a ring of 4096 points), divided into
 * `count` equal arcs. Stable across processes and restarts, so every process agrees on the shard.
 *
 * Callers hash a process-local channel by its part up to the `!` (`nonLocalName`), on send and on
 * receive alike: all of one process's channels share a queue, so they must share a shard.
 */
export function consistentHash(name: string, count: number): number {
  if (count <= 1) return 0;
  return Math.floor(((crc32(name) & 0xfff) * count) / 4096);
}

// zlib.crc32 only exists from Node 20.15; names are short, a table lookup is plenty.
const TABLE = new Int32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  TABLE[n] = c;
}

/** CRC-32 (IEEE, as Python's `binascii.crc32`) of a name's UTF-16 code units; names are ASCII. */
export function crc32(text: string): number {
  let crc = -1;
  for (let i = 0; i < text.length; i++) {
    crc = TABLE[(crc ^ text.charCodeAt(i)) & 0xff] ^ (crc >>> 8);
  }
  return (crc ^ -1) >>> 0;
}
