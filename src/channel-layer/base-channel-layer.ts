import { ChannelLayer, ChannelLayerOptions, ChannelLayerStats } from './channel-layer.js';
import { ChannelLayerClosed, InvalidChannelLayerInput } from './channel-layer.errors.js';
import {
  CapacityTable,
  assertChannelName,
  capacityOf,
  compileCapacities,
  positiveSeconds,
} from './channel-names.js';
import { randomName } from './random-name.js';

/**
 * What every layer of this library shares, as Channels' `BaseChannelLayer` holds it: the shared
 * options, checked once; capacity by the non-local part of a name; process-local channel names;
 * and the guards of `receive` and `attach`. A layer adds only its storage.
 */
export abstract class BaseChannelLayer extends ChannelLayer {
  readonly stats: ChannelLayerStats = { groupSendSkippedFull: 0 };
  /** Unique per layer instance; names its process-local channels. */
  readonly nodeId = randomName(12);

  /** `expiry`, in whole milliseconds. */
  protected readonly expiryMs: number;
  /** `groupExpiry`, in whole milliseconds. */
  protected readonly groupExpiryMs: number;
  /** Set by `close()`; a closed layer refuses calls with `ChannelLayerClosed`. */
  protected closed = false;
  private readonly capacity: number;
  private readonly capacities: CapacityTable;

  protected constructor(options: ChannelLayerOptions) {
    super();
    this.expiryMs = Math.round(positiveSeconds(options.expiry ?? 60, 'expiry') * 1000);
    this.groupExpiryMs = Math.round(
      positiveSeconds(options.groupExpiry ?? 86400, 'groupExpiry') * 1000,
    );
    this.capacity = options.capacity ?? 100;
    if (!Number.isInteger(this.capacity) || this.capacity < 1) {
      throw new InvalidChannelLayerInput('capacity must be an integer >= 1');
    }
    this.capacities = compileCapacities(options.channelCapacity ?? {});
  }

  /** Whether `channel` is attached to a receiver here. */
  protected abstract isAttached(channel: string): boolean;

  /** Whether a `receive` of `channel` is waiting here. */
  protected abstract isReceiving(channel: string): boolean;

  /** The unread messages `channel` may hold: `channelCapacity`'s, else `capacity`. */
  protected capacityOf(channel: string): number {
    return capacityOf(this.capacities, channel, this.capacity);
  }

  /** A new process-local channel name of this layer, `${prefix}.<node id>!<random>`, checked. */
  protected newChannelName(prefix: string): string {
    this.assertOpen();
    const name = `${prefix}.${this.nodeId}!${randomName(12)}`;
    assertChannelName(name);
    return name;
  }

  /** Throws unless a `receive` of `channel` may start: an attached channel is pushed to instead. */
  protected assertReceivable(channel: string, signal: AbortSignal | undefined): void {
    this.assertOpen();
    assertChannelName(channel);
    if (this.isAttached(channel)) {
      throw new InvalidChannelLayerInput(
        `channel ${channel} is attached; it cannot be received from`,
      );
    }
    signal?.throwIfAborted();
  }

  /** Throws unless `channel` may be attached: one receiver each, and none while a receive waits. */
  protected assertAttachable(channel: string): void {
    this.assertOpen();
    assertChannelName(channel);
    if (this.isAttached(channel)) {
      throw new InvalidChannelLayerInput(`channel ${channel} is already attached`);
    }
    if (this.isReceiving(channel)) {
      throw new InvalidChannelLayerInput(`channel ${channel} has a pending receive`);
    }
  }

  protected assertOpen(): void {
    if (this.closed) throw new ChannelLayerClosed();
  }
}
