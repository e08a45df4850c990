import type { ChannelLayer } from '../channel-layer/channel-layer';

/** Options of {@link ChatModule}; every one has a default. */
export interface ChatModuleOptions {
  /**
   * The WebSocket path. Matched with and without a trailing slash.
   * @default '/ws/socket-server'
   */
  path?: string;
  /**
   * The group every socket joins, as in the seed.
   * @default 'test'
   */
  group?: string;
  /**
   * The channel layer. When absent the module provides an `InMemoryChannelLayer` it owns and
   * closes; a layer given here belongs to the caller, who closes it.
   * @default a new InMemoryChannelLayer
   */
  layer?: ChannelLayer;
  /**
   * Largest incoming frame in bytes; a larger one closes the socket with 1009.
   * @default 262144 (256 KiB)
   */
  maxFrameBytes?: number;
  /**
   * Bytes a socket may have queued for sending before it counts as a full channel: further
   * messages to it are skipped (and counted) instead of growing server memory.
   * @default 1048576 (1 MiB)
   */
  maxBufferedBytes?: number;
}

/** The options with every default applied. */
export type ResolvedChatOptions = Required<Omit<ChatModuleOptions, 'layer'>> &
  Pick<ChatModuleOptions, 'layer'>;

/** Defaults of {@link ChatModuleOptions}. */
export const CHAT_DEFAULTS = {
  path: '/ws/socket-server',
  group: 'test',
  maxFrameBytes: 256 * 1024,
  maxBufferedBytes: 1024 * 1024,
} as const;

/** Applies defaults. */
export function resolveChatOptions(options: ChatModuleOptions = {}): ResolvedChatOptions {
  return {
    path: options.path ?? CHAT_DEFAULTS.path,
    group: options.group ?? CHAT_DEFAULTS.group,
    maxFrameBytes: options.maxFrameBytes ?? CHAT_DEFAULTS.maxFrameBytes,
    maxBufferedBytes: options.maxBufferedBytes ?? CHAT_DEFAULTS.maxBufferedBytes,
    layer: options.layer,
  };
}
