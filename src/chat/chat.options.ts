import type { IncomingMessage } from 'node:http';
import type { Type } from '@nestjs/common';
import type { ChannelLayer } from '../channel-layer/channel-layer.js';
import type { RoomState } from '../rooms/room-state.js';
import type { ConnectionPolicyOptions } from './connection-policy.js';

/** Who is on the other end of a socket, as the host's `authenticate` hook decided. */
export interface ChatUser {
  /** A stable identifier from the host (user id, session id). */
  id: string;
  /** The name shown on the user's chat frames; `id` when absent. */
  name?: string;
  /** Anything else the host wants to carry with the connection. */
  [key: string]: unknown;
}

/** What hooks know about a connection. */
export interface ChatConnectionInfo {
  /** The user `authenticate` returned, or undefined when the module has no such hook. */
  user?: ChatUser;
  /** The group (room) the socket is in. */
  group: string;
  /** The upgrade request: headers, cookies, URL. */
  request: IncomingMessage;
}

/** An incoming chat message, as `onMessage` sees it. */
export interface IncomingChatMessage extends ChatConnectionInfo {
  /** The text the client sent. */
  message: string;
}

/**
 * Decides who a handshake belongs to. Return the user, or `null`/`undefined` to refuse it with
 * HTTP 401 (no socket is opened). Throw an `HttpException` to refuse with its status.
 */
export type AuthenticateHook = (
  request: IncomingMessage,
) => ChatUser | null | undefined | Promise<ChatUser | null | undefined>;

/**
 * Checks or changes a message before it is broadcast: return the text to send (the same,
 * stripped or enriched), or throw `ChatMessageRejected` to answer the sender with an error frame.
 * An async hook keeps each sender's order.
 */
export type MessageHook = (message: IncomingChatMessage) => string | Promise<string>;

/**
 * Decides whether a handshake's user may join the room its URL names (`user` is undefined without
 * `authenticate`). `false` refuses it with HTTP 403: no socket is opened. Throw an `HttpException`
 * to refuse with its status.
 */
export type RoomAccessHook = (access: {
  user: ChatUser | undefined;
  room: string;
  request: IncomingMessage;
}) => boolean | Promise<boolean>;

/** Observes a socket that joined or left. Errors are logged, never sent to clients. */
export type ConnectionHook = (connection: ChatConnectionInfo) => void | Promise<void>;

/**
 * The layer: an instance (yours: you close it), a class (built with the module's DI, closed by
 * the module) or a factory (its result is closed by the module).
 */
export type ChannelLayerSource =
  ChannelLayer | Type<ChannelLayer> | (() => ChannelLayer | Promise<ChannelLayer>);

/** Serving the lobby page. */
export interface LobbyOptions {
  /**
   * The route the lobby is served at. The page connects to `/ws/socket-server/`, so keep the
   * default `path` when you serve it.
   * @default '/'
   */
  route?: string;
}

/** Serving `GET /api/rooms`. */
export interface RoomsApiOptions {
  /**
   * The most rooms listed: the ones with most members (ties: by name), sorted by name. Bounds
   * what one request costs however many rooms there are.
   * @default 100
   */
  limit?: number;
}

/**
 * Options that shape the module itself, so they are given to `forRoot` / `forRootAsync` directly
 * (beside `useFactory`), not returned by a factory.
 */
export interface ChatModuleExtras {
  /**
   * Serve the lobby page (`client/`) on the app's HTTP adapter (Express or Fastify); `true`
   * serves it at `/`. Its rooms list needs `roomsApi`; without it the page says the list is off.
   * @default false
   */
  lobby?: boolean | LobbyOptions;
  /**
   * Serve `GET /api/rooms`: the rooms with members and their member counts (sockets), at most
   * `limit` of them; `true` takes the default limit. Off, the module adds no such route.
   * @default false
   */
  roomsApi?: boolean | RoomsApiOptions;
}

/** Options of {@link ChatModule}; every one has a default. */
export interface ChatModuleOptions extends ConnectionPolicyOptions {
  /**
   * The WebSocket path. Matched with and without a trailing slash.
   * @default '/ws/socket-server'
   */
  path?: string;
  /**
   * The room (and group) of a socket whose URL names none, as in the seed.
   * @default 'test'
   */
  group?: string;
  /**
   * Sockets at `<roomPath>/<room>/` join that room (the Channels tutorial's URL); `?room=` works
   * on `path` too.
   * @default '/ws/chat'
   */
  roomPath?: string;
  /**
   * Where rooms keep history and presence: an instance (yours to close), a class or a factory
   * (closed by the module).
   * @default a new InMemoryRoomState with `historyLimit`
   */
  roomState?: RoomState | Type<RoomState> | (() => RoomState | Promise<RoomState>);
  /**
   * Chat messages a room keeps for late joiners and resumes. This and the three history bounds
   * below configure the default in-memory room store; give a store of your own
   * (`RedisRoomState`) the same options directly.
   * @default 50
   */
  historyLimit?: number;
  /**
   * Bytes of history a room keeps (see `recordBytes`): older messages are dropped past it. Also
   * bounds what a join sends.
   * @default 262144 (256 KiB)
   */
  historyBytes?: number;
  /**
   * Bytes of history all rooms keep together: past it the history of the room written to least
   * recently is dropped (its members stay).
   * @default 67108864 (64 MiB)
   */
  maxHistoryBytes?: number;
  /**
   * Rooms whose history is kept: past it the history of the room written to least recently is
   * dropped (its members stay).
   * @default 10000
   */
  maxRooms?: number;
  /**
   * Milliseconds a room remembers a client's message `id`, so the same id resent by the same
   * user (after a reconnect) is not stored or delivered twice. Configures the default in-memory
   * store; give `RedisRoomState` the same option.
   * @default 300000 (5 minutes)
   */
  resendWindowMs?: number;
  /**
   * Message ids a room remembers at most, the oldest forgotten first; 0 remembers none.
   * @default 200
   */
  maxResendIds?: number;
  /**
   * Milliseconds between a join or leave and the presence frame: changes in between share one.
   * A room's frames are also this long apart per 100 sockets on this node, in all rooms, when it
   * is sent (1,000 sockets: 10 times), so presence costs about 1,000 writes a second at most.
   * @default 100
   */
  presenceDelayMs?: number;
  /**
   * Most names a presence frame lists (its `count` has them all).
   * @default 100
   */
  presenceNames?: number;
  /**
   * The channel layer.
   * @default a new InMemoryChannelLayer, owned and closed by the module
   */
  layer?: ChannelLayerSource;
  /**
   * Decides who a handshake belongs to; see {@link AuthenticateHook}.
   * @default every handshake is accepted, with no user
   */
  authenticate?: AuthenticateHook;
  /**
   * Decides, per user and room, whether a socket may join; see {@link RoomAccessHook}. Runs after
   * `authenticate`, within the same `handshakeTimeoutMs`.
   * @default every room is open to everyone
   */
  canJoin?: RoomAccessHook;
  /**
   * Checks or changes each message before it is broadcast; see {@link MessageHook}.
   * @default messages are broadcast as sent
   */
  onMessage?: MessageHook;
  /** Called once a socket has joined its group and been greeted. @default none */
  onConnect?: ConnectionHook;
  /** Called once a joined socket has left. @default none */
  onDisconnect?: ConnectionHook;
  /**
   * Largest incoming frame in bytes; a larger one closes the socket with 1009.
   * @default 262144 (256 KiB)
   */
  maxFrameBytes?: number;
  /**
   * Largest chat message in UTF-8 bytes (its `message` text); a larger one is answered with a
   * `message_too_long` error frame and not sent. Distinct from `maxFrameBytes`, which bounds the
   * whole frame (JSON escapes included).
   * @default 65536 (64 KiB)
   */
  maxMessageBytes?: number;
  /**
   * Bytes a socket may have queued for sending before it counts as a slow consumer: messages to it
   * are then dropped (counted, and the layer counts a full channel) instead of growing server
   * memory, until its queue is under half this; then it gets one `messages_dropped` error frame
   * with the count, before its next message or on its next pong.
   * @default 1048576 (1 MiB)
   */
  maxBufferedBytes?: number;
  /**
   * Bytes all sockets together may have queued for sending, checked every second: past it, each
   * socket's allowance drops to a sixteenth of `maxBufferedBytes` (at least 16 KiB) until the
   * total is under half this, so thousands of slow readers cannot take the process's memory.
   * @default 268435456 (256 MiB)
   */
  maxTotalBufferedBytes?: number;
  /**
   * Bytes of messages still arriving (fragmented, or a frame trickling in) that ws may hold for
   * all sockets together: the socket whose bytes take the total past it is closed with 1013 at
   * once. Each socket holds at most `maxFrameBytes` of one message, for `messageTimeoutMs`.
   * @default 67108864 (64 MiB)
   */
  maxUnfinishedBytes?: number;
  /**
   * Milliseconds shutdown gives clients to answer the 1001 close before terminating them.
   * @default 2000
   */
  closeTimeoutMs?: number;
  /**
   * Frames of one socket that may wait to be handled while it joins, or behind an `onMessage`
   * hook or event handler: once the one they wait for has run over 5 s, one more is refused with
   * `rate_limited`.
   * @default 100
   */
  maxPendingFrames?: number;
  /**
   * Room messages one socket may hold while it joins, or while the layer has lost its room's
   * delivery and a catch-up reads what it missed; past it they are refused as by a full channel
   * (a chat message refused before the catch-up's history read comes back with it).
   * @default 1000
   */
  maxHeldMessages?: number;
}

/** Defaults of {@link ChatModuleOptions}. */
export const CHAT_DEFAULTS = {
  path: '/ws/socket-server',
  group: 'test',
  roomPath: '/ws/chat',
  historyLimit: 50,
  presenceDelayMs: 100,
  presenceNames: 100,
  maxFrameBytes: 256 * 1024,
  maxMessageBytes: 64 * 1024,
  maxBufferedBytes: 1024 * 1024,
  maxTotalBufferedBytes: 256 * 1024 * 1024,
  maxUnfinishedBytes: 64 * 1024 * 1024,
  closeTimeoutMs: 2000,
  maxPendingFrames: 100,
  maxHeldMessages: 1000,
} as const;

/** The options the gateway runs on, defaults applied. */
export type ResolvedChatOptions = Omit<ChatModuleOptions, keyof typeof CHAT_DEFAULTS> & {
  -readonly [K in keyof typeof CHAT_DEFAULTS]: (typeof CHAT_DEFAULTS)[K] extends string
    ? string
    : number;
};

/** Applies defaults. */
export function resolveChatOptions(options: ChatModuleOptions = {}): ResolvedChatOptions {
  return {
    ...options,
    path: urlPath('path', options.path ?? CHAT_DEFAULTS.path),
    group: defaultRoom(options.group ?? CHAT_DEFAULTS.group),
    roomPath: urlPath('roomPath', options.roomPath ?? CHAT_DEFAULTS.roomPath),
    historyLimit: options.historyLimit ?? CHAT_DEFAULTS.historyLimit,
    presenceDelayMs: options.presenceDelayMs ?? CHAT_DEFAULTS.presenceDelayMs,
    presenceNames: options.presenceNames ?? CHAT_DEFAULTS.presenceNames,
    maxFrameBytes: options.maxFrameBytes ?? CHAT_DEFAULTS.maxFrameBytes,
    maxMessageBytes: options.maxMessageBytes ?? CHAT_DEFAULTS.maxMessageBytes,
    maxBufferedBytes: options.maxBufferedBytes ?? CHAT_DEFAULTS.maxBufferedBytes,
    maxTotalBufferedBytes: options.maxTotalBufferedBytes ?? CHAT_DEFAULTS.maxTotalBufferedBytes,
    maxUnfinishedBytes: options.maxUnfinishedBytes ?? CHAT_DEFAULTS.maxUnfinishedBytes,
    closeTimeoutMs: options.closeTimeoutMs ?? CHAT_DEFAULTS.closeTimeoutMs,
    maxPendingFrames: options.maxPendingFrames ?? CHAT_DEFAULTS.maxPendingFrames,
    maxHeldMessages: options.maxHeldMessages ?? CHAT_DEFAULTS.maxHeldMessages,
  };
}

/** The `group` option, unless it is a name the chat keeps for itself. */
function defaultRoom(group: string): string {
  if (group.startsWith('__')) {
    throw new Error(
      `ChatModule: group ${JSON.stringify(group)} begins with __, kept for the chat's own groups`,
    );
  }
  return group;
}

/** `path` without its trailing slash (`/` stays `/`): how chat paths and routes are compared. */
export function withoutTrailingSlash(path: string): string {
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
}

/**
 * `value` as the endpoint matches it: a URL path, without its trailing slash. A value that is not
 * a path (no leading `/`, a query, a fragment, spaces) is a mistake of the app's, refused when
 * the app is created rather than left to match nothing.
 */
export function urlPath(name: string, value: string, example = '/ws/socket-server'): string {
  if (!/^\/[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*$/.test(value) || value.includes('//')) {
    throw new TypeError(
      `ChatModule: ${name} must be a URL path such as '${example}', got ${JSON.stringify(value)}`,
    );
  }
  return withoutTrailingSlash(value);
}
