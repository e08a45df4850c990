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
  | MessagesDroppedFrame;

/** What a client sends: the seed's `{"message": "..."}`. Other fields are ignored. */
export interface ClientFrame {
  message: string;
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
  /** The host's `onMessage` hook refused the message (hosts may use codes of their own). */
  MessageRejected: 'message_rejected',
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
 * Thrown by an `onMessage` hook to refuse a message: the sender gets
 * `{"type":"error","code":code,"message":message}` and nobody else sees anything.
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
  ) {}
}

/** A serialized error frame. */
export function errorFrame(code: ErrorCode | string, message: string): string {
  return JSON.stringify({ type: 'error', code, message } satisfies ErrorFrame);
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
  if (!Object.prototype.hasOwnProperty.call(parsed, 'message')) {
    return new ProtocolError(ErrorCode.MissingMessage, 'frame has no "message" field');
  }
  const message = (parsed as { message: unknown }).message;
  if (typeof message !== 'string') {
    return new ProtocolError(ErrorCode.InvalidMessage, '"message" must be a string');
  }
  return { message };
}
