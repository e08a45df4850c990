/**
 * A message carried by a channel layer. Its `type` selects the handler of the consumer that gets
 * it (`chat.message` → the chat handler). It holds JSON data: every layer carries it as JSON, so
 * a Date arrives as its ISO string and an undefined field not at all; a BigInt or a cycle throws
 * `InvalidChannelLayerInput`. Receivers get it frozen: they never share a mutable object, and the
 * layer never copies it per receiver.
 */
export interface ChannelMessage {
  readonly type: string;
  readonly [key: string]: unknown;
}

/**
 * Push delivery for a channel attached with {@link ChannelLayer.attach}. Called synchronously for
 * each message, in order. Return `false` when the consumer's own buffer is full: the message then
 * counts as refused by a full channel (`send` throws `ChannelFull`, `groupSend` skips it).
 */
export type ChannelReceiver = (message: ChannelMessage) => boolean | void;

/** Options shared by every layer; each mirrors a Channels layer setting. */
export interface ChannelLayerOptions {
  /**
   * Seconds an unread message lives in a channel.
   * @default 60
   */
  expiry?: number;
  /**
   * Seconds a group membership lives after its last `groupAdd`. Attached channels are alive by
   * definition and are kept while attached.
   * @default 86400
   */
  groupExpiry?: number;
  /**
   * Unread messages a channel holds before `send` throws `ChannelFull`.
   * @default 100
   */
  capacity?: number;
  /**
   * Per-channel capacity overrides, first match wins: glob patterns (`*`, `?`) or regular
   * expressions, matched on the name up to and including any `!` (Channels' `channel_capacity`).
   * @default {}
   */
  channelCapacity?:
    Readonly<Record<string, number>> | ReadonlyArray<readonly [RegExp | string, number]>;
}

/** Told of a gap in a layer's deliveries: see {@link ChannelLayer.onDeliveryGap}. */
export interface DeliveryGapListener {
  /** Messages to `groups` stop reaching this process's channels. */
  lost(groups: readonly string[]): void;
  /** They reach them again; what was sent to `groups` since `lost` may be missing. */
  back(groups: readonly string[]): void;
}

/** Options for {@link ChannelLayer.receive}. */
export interface ReceiveOptions {
  /** Aborting rejects the pending receive and frees its place in line. */
  signal?: AbortSignal;
}

/** Counters every layer keeps; read them for metrics. */
export interface ChannelLayerStats {
  /** Messages that `groupSend` skipped because a member was full. */
  groupSendSkippedFull: number;
}

/**
 * The channel layer: Django Channels' layer API with its semantics. This abstract class is both
 * the contract and the DI token: inject `ChannelLayer` anywhere to reach rooms.
 *
 * - Names: groups are ASCII letters, digits, `-`, `_`, `.`, shorter than 100 characters; channels
 *   the same plus one `!` for process-local channels. Invalid names throw
 *   `InvalidChannelLayerInput` (a `TypeError`).
 * - Messages are plain objects with a `type` that does not start with `_` or `.`. They are
 *   copied once per call and frozen, so no receiver shares a mutable object with another or with
 *   the sender.
 * - Capacity: `send` to a channel holding `capacity` unread messages throws `ChannelFull`;
 *   `groupSend` skips full members silently and counts them in `stats`.
 * - Expiry: an unread message is dropped after `expiry` seconds, a membership after
 *   `groupExpiry` seconds without `groupAdd`. A group whose last member leaves is deleted.
 * - Order: messages from one caller to one channel arrive in the order they were sent.
 */
export abstract class ChannelLayer {
  /** What the layer has counted since it was created. */
  abstract readonly stats: Readonly<ChannelLayerStats>;

  /** Queues `message` on `channel`. Throws `ChannelFull` when the channel is at capacity. */
  abstract send(channel: string, message: ChannelMessage): Promise<void>;

  /**
   * Resolves with the next message of `channel`, waiting until one arrives. Waiting receivers
   * are served in the order they called. Not allowed on an attached channel.
   */
  abstract receive(channel: string, options?: ReceiveOptions): Promise<ChannelMessage>;

  /** A new unique process-local channel name, `${prefix}.<layer id>!<random>`. */
  abstract newChannel(prefix?: string): Promise<string>;

  /** Adds `channel` to `group`, or refreshes its membership. */
  abstract groupAdd(group: string, channel: string): Promise<void>;

  /** Removes `channel` from `group`; deletes the group when it was the last member. */
  abstract groupDiscard(group: string, channel: string): Promise<void>;

  /** The live members of `group`, in no particular order (empty for an unknown group). */
  abstract groupChannels(group: string): Promise<string[]>;

  /** Sends `message` to every member of `group`, skipping full members. */
  abstract groupSend(group: string, message: ChannelMessage): Promise<void>;

  /**
   * Push delivery, beyond Channels' API: while attached, messages for `channel` go to `receiver`
   * as they arrive (messages already queued first) instead of waiting for `receive`. This is how a
   * socket gets its messages without polling. Returns the function that detaches it.
   */
  abstract attach(channel: string, receiver: ChannelReceiver): () => void;

  /** Drops every channel, message and group of this layer. */
  abstract flush(): Promise<void>;

  /**
   * Resolves when the layer can serve calls, rejects when it cannot (closed, backend down). The
   * readiness check (`GET /health/ready`) calls it. The default reads a group's members, which
   * reaches a remote backend and fails on a closed layer; a layer may override it with something
   * cheaper, such as Redis' `PING`.
   */
  async ping(): Promise<void> {
    await this.groupChannels('health.ping');
  }

  /**
   * Registers a listener for the gaps in this process's deliveries: `lost` when messages sent to
   * `groups` stop reaching its attached channels (the backend went away, failed over or moved
   * their slot), `back` when they reach them again; what was sent in between may be missing. A
   * consumer that keeps what it sends (the chat keeps a room's history) can hold what comes in
   * between and give its channels what they missed. A layer that cannot lose a delivery (the
   * in-memory one) never calls it.
   */
  onDeliveryGap(listener: DeliveryGapListener): void {
    void listener;
  }

  /** Releases what the layer holds; pending receives reject. Safe to call twice. */
  abstract close(): Promise<void>;
}
