import { Logger } from '@nestjs/common';
import { GROUP_ADD, LayerKeys } from './redis-scripts.js';
import { RedisShard } from '../redis/redis-shard.js';
import { RedisShards } from '../redis/redis-shards.js';

/** Members per GROUP_ADD call when refreshing, to keep Lua's unpack within bounds. */
const REFRESH_CHUNK = 500;

/** A process-local member of a group, fanned out to by this process. */
export interface Membership {
  readonly channel: string;
  /** Local clock, ms; ignored while the channel is attached. */
  expiresAt: number;
}

/** A group with members in this process: subscribed to its topic while it has any. */
export interface LocalGroup {
  readonly kind: 'group';
  readonly name: string;
  readonly topic: string;
  readonly shard: RedisShard;
  readonly members: Map<string, Membership>;
}

/** What the groups need from their layer. */
export interface LocalGroupsHost {
  readonly shards: RedisShards;
  /** The key layout of a shard's names. */
  keysOf(shard: RedisShard): LayerKeys;
  readonly groupExpiryMs: number;
  readonly logger: Logger;
  isClosed(): boolean;
  isAttached(channel: string): boolean;
  /** Routes the messages of `topic` to the group, or stops (`undefined`). */
  route(topic: string, group: LocalGroup | undefined): void;
}

/**
 * The groups this process fans out to, and their process-local members here. A group is
 * subscribed to while it has a member; memberships expire like Redis' unless attached, and those
 * of attached channels are refreshed in Redis so they outlive `groupExpiry`.
 */
export class LocalGroups {
  private readonly groups = new Map<string, LocalGroup>();

  constructor(private readonly host: LocalGroupsHost) {}

  get(group: string): LocalGroup | undefined {
    return this.groups.get(group);
  }

  /** The names of the groups whose topic is on `shard`. */
  on(shard: RedisShard): string[] {
    const names: string[] = [];
    for (const group of this.groups.values()) if (group.shard === shard) names.push(group.name);
    return names;
  }

  /** Adds or refreshes `channel` in `group`; resolves once subscribed, so a send reaches it. */
  async join(group: string, channel: string): Promise<void> {
    let local = this.groups.get(group);
    if (!local) {
      const shard = this.host.shards.of(group);
      local = {
        kind: 'group',
        name: group,
        topic: this.host.keysOf(shard).groupTopic(group),
        shard,
        members: new Map(),
      };
      this.groups.set(group, local);
      this.host.route(local.topic, local);
    }
    const expiresAt = Date.now() + this.host.groupExpiryMs;
    const member = local.members.get(channel);
    if (member) member.expiresAt = expiresAt;
    else local.members.set(channel, { channel, expiresAt });
    await local.shard.subscribe(local.topic);
  }

  leave(group: string, channel: string): void {
    const local = this.groups.get(group);
    if (local?.members.delete(channel) && local.members.size === 0) this.drop(local);
  }

  /** Forgets a group and unsubscribes from it. */
  drop(group: LocalGroup): void {
    if (this.groups.get(group.name) !== group) return;
    this.groups.delete(group.name);
    this.host.route(group.topic, undefined);
    group.shard.unsubscribe(group.topic);
  }

  dropAll(): void {
    for (const group of [...this.groups.values()]) this.drop(group);
  }

  /** Forgets every group without unsubscribing: the connections are closing. */
  clear(): void {
    this.groups.clear();
  }

  /** Drops the memberships past their expiry of channels not attached, and emptied groups. */
  expire(now: number): void {
    for (const group of [...this.groups.values()]) {
      for (const member of group.members.values()) {
        if (member.expiresAt <= now && !this.host.isAttached(member.channel)) {
          group.members.delete(member.channel);
        }
      }
      if (group.members.size === 0) this.drop(group);
    }
  }

  /**
   * Re-adds the memberships of attached channels in Redis: periodically so they outlive
   * `groupExpiry`, and when a shard comes back (`only`), since Redis may have lost them.
   */
  async refresh(only?: RedisShard): Promise<boolean> {
    if (this.host.isClosed()) return true;
    const { groupExpiryMs } = this.host;
    const expiresAt = Date.now() + groupExpiryMs;
    const calls: Array<Promise<unknown>> = [];
    for (const group of this.groups.values()) {
      if (only && group.shard !== only) continue;
      const channels: string[] = [];
      for (const member of group.members.values()) {
        if (!this.host.isAttached(member.channel)) continue;
        member.expiresAt = expiresAt;
        channels.push(member.channel);
      }
      for (let at = 0; at < channels.length; at += REFRESH_CHUNK) {
        calls.push(
          group.shard.run(
            GROUP_ADD,
            [this.host.keysOf(group.shard).localMembers(group.name)],
            [groupExpiryMs, ...channels.slice(at, at + REFRESH_CHUNK)],
          ),
        );
      }
    }
    const failed = (await Promise.allSettled(calls)).filter(
      (result) => result.status === 'rejected',
    );
    if (failed.length > 0 && !this.host.isClosed()) {
      this.host.logger.warn(`could not refresh ${failed.length} group(s); retrying later`);
    }
    return failed.length === 0;
  }
}
