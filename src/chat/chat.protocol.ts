/**
 * The wire protocol. The seed's frames are a contract: a client written for Django Channels'
 * chat demo works unchanged. New capabilities add fields and frame types, never change these.
 */

/** Sent once a socket has joined its group: the seed's exact greeting. */
export interface ConnectionEstablishedFrame {
  type: 'connection_established';
  message: 'You are connected!';
}

/** A chat message as every member of the group receives it. */
export interface ChatFrame {
  type: 'chat';
  message: string;
  /** The room it was said in (an added field, as are the next three). */
  room?: string;
  /** The sender's display name. */
  user?: string;
  /** Unique and increasing within the room, `<ms>-<seq>`: resume with `?since=<id>`. */
  id?: string;
  /** When the server accepted it, in milliseconds since the epoch. */
  ts?: number;
}

/** Right after the greeting: the room's recent messages, oldest first, and who you are. */
export interface HistoryFrame {
  type: 'history';
  room: string;
  /** The name this socket chats as. */
  user: string;
  messages: ChatFrame[];
}

/** On every join and leave, to every member: who is in the room (sorted, each name once). */
export interface PresenceFrame {
  type: 'presence';
  room: string;
  /** At most `presenceNames` (100) names. */
  users: string[];
  /** How many distinct users are in the room. */
  count: number;
}

/** Sent to the one client whose frame could not be handled; the socket stays open. */
export interface ErrorFrame {
  type: 'error';
  code: ErrorCode | string;
  message: string;
  /** The `id` of the client frame it answers, when that frame had one (an added field). */
  id?: string;
}

/**
 * The answer to a client frame that carried an `id`: a chat message is in the room's history and
 * published (`message_id` is its chat frame's `id`), or an event's handler has finished.
 */
export interface AckFrame {
  type: 'ack';
  id: string;
  /** For a chat message: the `id` of the chat frame every member got. */
  message_id?: string;
}

/**
 * A frame of the host's own type (`ChatRooms.emit`, `sendToUser`, `sendToConnection`, an event
 * handler's `reply`): any JSON object whose `type` is not one of {@link RESERVED_FRAME_TYPES}.
 */
export interface HostFrame {
  type: string;
  [field: string]: unknown;
}

/**
 * Tells a slow reader how many chat messages it missed: sent once its send buffer has drained,
 * before the next message it gets.
 */
export interface MessagesDroppedFrame extends ErrorFrame {
  code: 'messages_dropped';
  /** Chat messages dropped since the last such frame. */
  count: number;
}

/** Everything the server sends. */
export type ServerFrame =
  | ConnectionEstablishedFrame
  | ChatFrame
  | HistoryFrame
  | PresenceFrame
  | ErrorFrame
  | MessagesDroppedFrame
  | AckFrame;

/** The frame types the chat itself sends; host frames may not use them. */
export const RESERVED_FRAME_TYPES: ReadonlySet<string> = new Set([
  'chat',
  'connection_established',
  'history',
  'presence',
  'error',
  'ack',
]);

/** Groups the chat keeps for itself (a user's sockets) begin with this; no room may. */
export const RESERVED_GROUP_PREFIX = '__';

/** A type name a host frame or client event may have: a letter, then letters, digits, `_.:-`. */
const FRAME_TYPE = /^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/;

/** A client frame's `id`: 1 to 64 printable ASCII characters, no space. */
const FRAME_ID = /^[\x21-\x7e]{1,64}$/;

/**
 * What a client sends: the seed's `{"message": "..."}` (with no `type`, or `"type":"chat"`), or an
 * event of a type the host declared (`{"type":"typing", ...}`). Either may carry an `id` to be
 * acknowledged. Other fields of a chat message are ignored.
 */
export type ClientFrame = ChatClientFrame | EventClientFrame;

export interface ChatClientFrame {
  kind: 'chat';
  message: string;
  id?: string;
}

export interface EventClientFrame {
  kind: 'event';
  type: string;
  /** The whole frame as the client sent it. */
  frame: Readonly<Record<string, unknown>>;
  id?: string;
}

/** Error codes a client can act on; each is listed in the README. */
export const ErrorCode = {
  /** The frame is not valid JSON. */
  InvalidJson: 'invalid_json',
  /** The frame is JSON but not an object. */
  NotAnObject: 'not_an_object',
  /** The object has no `message`. */
  MissingMessage: 'missing_message',
  /** `message` is not a string. */
  InvalidMessage: 'invalid_message',
  /** `message` is longer than `maxMessageBytes` (64 KiB by default): it was not sent. */
  MessageTooLong: 'message_too_long',
  /** The frame is empty. */
  EmptyFrame: 'empty_frame',
  /** A binary frame: the protocol is JSON text. */
  BinaryFrame: 'binary_frame',
  /** The host's `onMessage` hook or event handler refused the frame (or a code of the host's). */
  MessageRejected: 'message_rejected',
  /** `type` names no event the host declared. */
  UnknownType: 'unknown_type',
  /** `type` is not a string. */
  InvalidType: 'invalid_type',
  /** `id` is not 1 to 64 printable ASCII characters. */
  InvalidId: 'invalid_id',
  /** The room in the URL breaks the group-name rules; the socket is closed (1008). */
  InvalidRoom: 'invalid_room',
  /**
   * `?name=` is not 1–32 printable characters once NFKC-normalized, shows nothing but blanks, or
   * mixes Latin letters with Cyrillic or Greek ones; the socket is closed (1008).
   */
  InvalidName: 'invalid_name',
  /** `?since=` is not a chat frame id; the socket is closed (1008). */
  InvalidSince: 'invalid_since',
  /** The channel layer (e.g. Redis) is unreachable: the message was not sent. */
  LayerUnavailable: 'layer_unavailable',
  /** Anything else that went wrong on the server; the message was not sent. */
  InternalError: 'internal_error',
  /** Over the rate limit: the frame was not handled. Keep going and the socket closes (1008). */
  RateLimited: 'rate_limited',
  /**
   * The socket read too slowly and `count` chat messages to it were dropped; sent once it has
   * drained, before the next message (see {@link MessagesDroppedFrame}).
   */
  MessagesDropped: 'messages_dropped',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Close codes the server uses; each is listed in the README. */
export const CloseCode = {
  /** The server is shutting down. */
  GoingAway: 1001,
  /** A text frame was not valid UTF-8 (sent by `ws` itself). */
  InvalidFramePayload: 1007,
  /**
   * The client kept sending over the rate limit, left a message unfinished past
   * `messageTimeoutMs`, or its URL named a bad room, name or resume point.
   */
  PolicyViolation: 1008,
  /** A frame was larger than the frame size limit (sent by `ws` itself). */
  MessageTooBig: 1009,
  /**
   * The channel layer could not be reached when the socket tried to join, or the server holds
   * `maxUnfinishedBytes` of messages still arriving and this socket's would take it past.
   */
  TryAgainLater: 1013,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** The greeting, serialized once. */
export const CONNECTION_ESTABLISHED = JSON.stringify({
  type: 'connection_established',
  message: 'You are connected!',
} satisfies ConnectionEstablishedFrame);

/** The layer message type a chat message travels as; selects the gateway's chat handler. */
export const CHAT_MESSAGE = 'chat.message';

/** The layer message type of a presence change; selects the gateway's presence handler. */
export const PRESENCE_UPDATE = 'presence.update';

/** The layer message type a host frame travels as (`{type, text, except?}`: see `hostMessage`). */
export const HOST_FRAME = 'chat.frame';

/**
 * The wire frame for a layer message, or undefined for a type with no handler. Chat frames copy
 * the fields the message has, in the documented order.
 */
export function wireFrame(message: {
  readonly type: string;
  readonly [key: string]: unknown;
}): ChatFrame | PresenceFrame | undefined {
  switch (message.type) {
    case CHAT_MESSAGE: {
      const frame: ChatFrame = { type: 'chat', message: String(message.message) };
      if (typeof message.room === 'string') frame.room = message.room;
      if (typeof message.user === 'string') frame.user = message.user;
      if (typeof message.id === 'string') frame.id = message.id;
      if (typeof message.ts === 'number') frame.ts = message.ts;
      return frame;
    }
    case PRESENCE_UPDATE:
      return {
        type: 'presence',
        room: String(message.room),
        users: Array.isArray(message.users) ? message.users.map(String) : [],
        count: Number(message.count),
      };
    default:
      return undefined;
  }
}

/**
 * Thrown by an `onMessage` hook or an event handler to refuse a client's frame: the sender gets
 * `{"type":"error","code":code,"message":message}` (with the frame's `id`, if it had one) and
 * nobody else sees anything.
 */
export class ChatMessageRejected extends Error {
  override readonly name = 'ChatMessageRejected';

  constructor(
    message: string,
    readonly code: string = ErrorCode.MessageRejected,
  ) {
    super(message);
  }
}

/** A frame that could not be parsed, as the error to send back. */
export class ProtocolError {
  constructor(
    readonly code: ErrorCode,
    readonly message: string,
    /** The frame's `id`, when it had a valid one. */
    readonly id?: string,
  ) {}
}

/** A serialized error frame; `id`: the client frame's it answers. */
export function errorFrame(code: ErrorCode | string, message: string, id?: string): string {
  const frame: ErrorFrame = { type: 'error', code, message };
  if (id !== undefined) frame.id = id;
  return JSON.stringify(frame);
}

/** A host frame that cannot be sent: not an object, or a bad or reserved `type`. */
export class InvalidChatFrame extends TypeError {
  override readonly name = 'InvalidChatFrame';
}

/** Why `frame` cannot be sent as a host frame, or undefined when it can. */
export function hostFrameProblem(frame: unknown): string | undefined {
  if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) {
    return 'a frame must be a JSON object';
  }
  const { type } = frame as { type?: unknown };
  if (typeof type !== 'string' || !FRAME_TYPE.test(type)) {
    return `a frame's type must be a letter, then letters, digits or _.:-, at most 64 (got ${JSON.stringify(type)})`;
  }
  if (RESERVED_FRAME_TYPES.has(type)) return `the frame type ${type} is the chat's own`;
  return undefined;
}

/** Whether `type` may name a client event. */
export function isEventType(type: string): boolean {
  return FRAME_TYPE.test(type) && !RESERVED_FRAME_TYPES.has(type);
}

/**
 * Parses one incoming frame. Text arrives as a string; anything else is a binary frame. Never
 * throws: a bad frame becomes a `ProtocolError` to answer with.
 */
export function parseClientFrame(data: unknown): ClientFrame | ProtocolError {
  if (typeof data !== 'string') {
    return new ProtocolError(
      ErrorCode.BinaryFrame,
      'binary frames are not supported; send JSON text',
    );
  }
  if (data.length === 0) {
    return new ProtocolError(ErrorCode.EmptyFrame, 'empty frame; send {"message": "..."}');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch {
    return new ProtocolError(ErrorCode.InvalidJson, 'frame is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return new ProtocolError(ErrorCode.NotAnObject, 'frame must be a JSON object');
  }
  const object = parsed as Record<string, unknown>;
  let id: string | undefined;
  if (Object.prototype.hasOwnProperty.call(object, 'id')) {
    if (typeof object.id !== 'string' || !FRAME_ID.test(object.id)) {
      return new ProtocolError(
        ErrorCode.InvalidId,
        '"id" must be 1 to 64 printable ASCII characters',
      );
    }
    id = object.id;
  }
  const { type } = object;
  if (type !== undefined && type !== 'chat') {
    if (typeof type !== 'string') {
      return new ProtocolError(ErrorCode.InvalidType, '"type" must be a string', id);
    }
    return { kind: 'event', type, frame: object, id };
  }
  if (!Object.prototype.hasOwnProperty.call(object, 'message')) {
    return new ProtocolError(ErrorCode.MissingMessage, 'frame has no "message" field', id);
  }
  const { message } = object;
  if (typeof message !== 'string') {
    return new ProtocolError(ErrorCode.InvalidMessage, '"message" must be a string', id);
  }
  return { kind: 'chat', message, id };
}
