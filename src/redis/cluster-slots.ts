/**
 * Redis Cluster's key slots, and the hash tags that place a store's buckets on them.
 *
 * On a cluster a store spreads its names over `buckets` buckets (`consistentHash`, as over
 * sharded hosts), and every key and shard channel of one bucket carries the bucket's hash tag, so
 * each script's keys (and the channel it SPUBLISHes on) share one slot. The tags are chosen so the
 * buckets sit evenly across the slot space: bucket `i` of `n` gets a slot in the `i`-th of `n`
 * equal ranges, so a cluster whose primaries own equal ranges (what `redis-cli --cluster create`
 * makes) gets `n / primaries` buckets each.
 */

/** Redis Cluster's number of hash slots. */
export const CLUSTER_SLOTS = 16384;

const CRC16 = new Uint16Array(256);
for (let n = 0; n < 256; n++) {
  let c = n << 8;
  for (let k = 0; k < 8; k++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
  CRC16[n] = c;
}

/** CRC-16/XMODEM of a string's UTF-8 bytes, as Redis Cluster computes it. */
function crc16(text: string): number {
  let crc = 0;
  for (const byte of Buffer.from(text, 'utf8')) {
    crc = ((crc << 8) & 0xffff) ^ CRC16[((crc >> 8) ^ byte) & 0xff];
  }
  return crc;
}

/** The slot of `key`: of its hash tag (the first non-empty `{...}`) if it has one. */
export function clusterSlot(key: string): number {
  const open = key.indexOf('{');
  if (open !== -1) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) return crc16(key.slice(open + 1, close)) % CLUSTER_SLOTS;
  }
  return crc16(key) % CLUSTER_SLOTS;
}

/**
 * The hash tag of each of `count` buckets, `{b<i>.<j>}` with the first `j` whose slot is in the
 * bucket's range; the same on every process. `count` is at most {@link CLUSTER_SLOTS}.
 */
export function bucketTags(count: number): string[] {
  const tags: string[] = [];
  for (let bucket = 0; bucket < count; bucket++) {
    const low = Math.ceil((bucket * CLUSTER_SLOTS) / count);
    const high = Math.ceil(((bucket + 1) * CLUSTER_SLOTS) / count);
    for (let attempt = 0; ; attempt++) {
      const tag = `{b${bucket}.${attempt}}`;
      const slot = clusterSlot(tag);
      if (slot >= low && slot < high) {
        tags.push(tag);
        break;
      }
    }
  }
  return tags;
}
