/**
 * The Redis side of `RedisRoomState`: its key layout. Its Lua scripts (`redis-history-scripts.ts`,
 * `redis-presence-scripts.ts`) keep each change atomic and one round trip, timed by Redis' clock
 * (`NOW`), so processes with skewed clocks still agree on who is gone.
 *
 * Keys (`R` is `<prefix>:rooms`; a member's field is `<node id>:<member>`):
 * - `R:h:<room>` STREAM, the room's history: one entry per record, field `r` holding the record
 *   serialized once (`{message,user,ts}`; its id is the entry's id, its room the key's) and field
 *   `b` the bytes it counts for (`recordBytes`). Trimmed on every append, oldest first, to at most
 *   `historyLimit` entries and `historyBytes` bytes (the newest entry always stays); its TTL
 *   (refreshed by appends) drops idle rooms.
 * - `R:written` ZSET of the rooms with history on this Redis, scored by a strictly increasing
 *   stamp of their last append (Redis time in µs, or one past the newest).
 * - `R:sizes` HASH, room → the sum of its stream's `b` fields, for the rooms of `R:written`.
 * - `R:bytes` STRING, the sum of `R:sizes`: the bytes of history this Redis holds.
 *
 *   Every append keeps these three exact together: it records its room's size after the trim
 *   and adds the difference to `R:bytes`; a room whose stream is gone when it is written again
 *   starts from zero. It then drops the entries of `R:written` older than the expiry (by Redis'
 *   clock: their streams have expired) with their sizes, and deletes the history of the lowest
 *   (least recently written) rooms, with their sizes, while `R:written` holds more than
 *   `maxRooms` rooms or `R:bytes` is above `maxHistoryBytes`; the room just written goes last,
 *   only when it alone holds more. So this Redis holds at most `maxRooms` histories, of at most
 *   `historyBytes` each and `maxHistoryBytes` in all. A stream with no size in `R:sizes` is
 *   counted once, from its entries, by its next append, and is in the total from then on; until
 *   then only `maxRooms` bounds it. The three keys take the streams' TTL, so a Redis whose rooms
 *   all went idle keeps none of them.
 * - `R:hb:<room>` STRING, read by nothing: a byte count that stores without `R:sizes` kept beside
 *   a stream. The append that counts the room's stream, or evicts the room, deletes it.
 * - `R:rs:<room>` HASH and `R:ro:<room>` LIST: the resend keys of the room's recent appends
 *   (see `redis-history-scripts.ts`), at most `maxResendIds`, each for `resendWindowMs`.
 * - `R:evicted-id` STRING, the highest id an evicted stream had handed out: a room written again
 *   within that millisecond starts past it, so its ids still increase.
 * - `R:p:<room>` HASH, presence: `<node>:<member>` → user name.
 * - `R:pv:<room>` HASH, the versions of the room's presence: `v` counts its changes (a member
 *   joined, left, renamed or was swept), `a` is the `v` last announced. Every process that saw a
 *   change asks to announce it; the first to ask sends, the others find `a` = `v`. Deleted when
 *   the room empties.
 * - `R:active`   ZSET of rooms with members, scored by their member count.
 * - `R:nodes`    ZSET of the processes that have registered, scored by the Redis time (ms) at
 *   which their heartbeat runs out. One key finds every expired process without a SCAN.
 * - `R:n:<node>` HASH, a process's own index: room → how many of its members are there, so the
 *   sweep of a dead process visits only its rooms.
 *
 * Scripts declare the keys they are given in KEYS. The append's eviction and the sweep and
 * resync scripts reach keys they compute from `R` (`R:h:<room>`, `R:hb:<room>`, `R:p:<room>`,
 * `R:pv:<room>`):
 * fine on a plain Redis, which is what the store shards over. On a Redis Cluster, `R` is
 * `<prefix>:rooms:<tag>` with the hash tag of the room's bucket (`{b3.0}`), the same tag as the
 * layer's keys of the room's group: every key above, of every room of the bucket, is then in one
 * slot, so each script (the eviction and the sweep included) runs on one node and stays exact
 * within its bucket. `R:written`, `R:sizes`, `R:bytes`, `R:active`, `R:nodes` and `R:n:<node>` are
 * per bucket there, as they are per server when sharding over plain servers.
 */
export class RoomKeys {
  /** `R`, the root of every key of the store (or of a cluster bucket's): `<prefix>:rooms`. */
  readonly root: string;

  constructor(prefix: string, tag = '') {
    this.root = tag === '' ? `${prefix}:rooms` : `${prefix}:rooms:${tag}`;
  }

  /** `R:h:<room>`: the room's history. */
  history(room: string): string {
    return `${this.root}:h:${room}`;
  }

  /**
   * KEYS of `APPEND` (and `APPEND_AND_SEND`): the room's stream, the shard's bookkeeping, and the
   * room's resend keys.
   */
  append(room: string): string[] {
    const root = this.root;
    return [
      this.history(room),
      `${root}:sizes`,
      `${root}:bytes`,
      `${root}:written`,
      `${root}:evicted-id`,
      this.resends(room),
      `${root}:ro:${room}`,
    ];
  }

  /** `R:rs:<room>`: the room's resend keys, each → `<Redis ms>:<ts>:<id>`. */
  resends(room: string): string {
    return `${this.root}:rs:${room}`;
  }

  /** `R:p:<room>`: the room's presence. */
  presence(room: string): string {
    return `${this.root}:p:${room}`;
  }

  /** `R:pv:<room>`: the versions of the room's presence, changed (`v`) and told (`a`). */
  versions(room: string): string {
    return `${this.root}:pv:${room}`;
  }

  /** KEYS of `JOIN`, `LEAVE` and `RESYNC` for `node`'s members of `room`. */
  members(room: string, node: string): string[] {
    return [this.presence(room), this.active(), this.index(node), this.versions(room)];
  }

  /** `R:active`: rooms with members, by member count. */
  active(): string {
    return `${this.root}:active`;
  }

  /** `R:nodes`: the processes that registered, by heartbeat deadline. */
  nodes(): string {
    return `${this.root}:nodes`;
  }

  /** `R:n:<node>`: a process's own index of its rooms. */
  index(node: string): string {
    return `${this.root}:n:${node}`;
  }
}
