/** Thrown by `send` when the target channel already holds `capacity` unread messages. */
export class ChannelFull extends Error {
  override readonly name = 'ChannelFull';
  readonly code = 'channel_full';

  constructor(readonly channel: string) {
    super(`channel ${channel} is full`);
  }
}

/**
 * A channel or group name, or a message, that breaks the layer's rules. A `TypeError`, as in
 * Channels, so callers can tell a programming error from a full channel.
 */
export class InvalidChannelLayerInput extends TypeError {
  override readonly name = 'InvalidChannelLayerInput';
  readonly code = 'invalid_layer_input';
}

/** The layer was closed; pending and later calls fail with this. */
export class ChannelLayerClosed extends Error {
  override readonly name = 'ChannelLayerClosed';
  readonly code = 'layer_closed';

  constructor() {
    super('channel layer is closed');
  }
}

/**
 * The layer's backing service (Redis) cannot be reached right now. The operation did not happen;
 * callers should report it rather than pretend success, and may retry later.
 */
export class ChannelLayerUnavailable extends Error {
  override readonly name = 'ChannelLayerUnavailable';
  readonly code = 'layer_unavailable';

  constructor(message = 'channel layer is unavailable', options?: { cause?: unknown }) {
    super(message, options);
  }
}
