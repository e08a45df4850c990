import { Logger, SetMetadata } from '@nestjs/common';
import { DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';
import { WebSocket } from 'ws';
import type { ChannelLayer } from '../channel-layer/channel-layer.js';
import { ChannelLayerUnavailable } from '../channel-layer/channel-layer.errors.js';
import { errorText } from '../error-text.js';
import { hostMessage } from './chat-rooms.js';
import type { ChatUser } from './chat.options.js';
import {
  ChatMessageRejected,
  ErrorCode,
  EventClientFrame,
  HostFrame,
  isEventType,
} from './chat.protocol.js';
import type { Connection } from './connection.js';
import { Outbox, TextFrame } from './outbox.js';

/** The error for a frame refused because too many of its socket's frames wait to be handled. */
export const TOO_MANY_WAITING = 'too many frames waiting: this one was not handled';

const CHAT_EVENT = 'nest-channels-chat:event';

/**
 * What a handler of a client event knows and may do. Its answers go to the one socket that sent
 * the frame (`reply`) or to the room on every process (`emit`); to refuse the frame, throw
 * `ChatMessageRejected` (the sender gets an error frame with its code).
 */
export interface ChatEventContext<F extends object = Record<string, unknown>> {
  /** The event's `type`. */
  readonly type: string;
  /** The client's frame, as sent (`type` and `id` included). */
  readonly frame: Readonly<F>;
  /** The user `authenticate` admitted, when the module has that hook. */
  readonly user: ChatUser | undefined;
  /** The name the socket chats as. */
  readonly userName: string;
  /** The room the socket is in. */
  readonly room: string;
  /** This socket, for `ChatRooms.sendToConnection`. */
  readonly connectionId: string;
  /** Sends `frame` to this socket only. Throws `InvalidChatFrame` for a reserved or bad type. */
  reply(frame: HostFrame): void;
  /**
   * Sends `frame` to every socket of the room, on every process; `exceptSelf` leaves this one
   * out. Rejects with `InvalidChatFrame`, or the layer's error.
   */
  emit(frame: HostFrame, options?: { exceptSelf?: boolean }): Promise<void>;
}

/** A client event's handler; its promise settles before the sender's next frame is handled. */
export type ChatEventHandler = (context: ChatEventContext) => void | Promise<void>;

/**
 * Marks a provider method as the handler of client frames `{"type": type, ...}`, for every
 * ChatModule of the app. The method gets a {@link ChatEventContext}. `type`: a letter, then
 * letters, digits or `_.:-` (at most 64), not one of the chat's own frame types.
 */
export function ChatEvent(type: string): MethodDecorator {
  if (!isEventType(type)) {
    throw new TypeError(
      `@ChatEvent(${JSON.stringify(type)}): use a letter, then letters, digits or _.:-, ` +
        "and none of the chat's own types (chat, connection_established, history, presence, error, ack)",
    );
  }
  return SetMetadata(CHAT_EVENT, type);
}

/** The app's `@ChatEvent` handlers, by type; two for one type fail the app's start. */
export function discoverChatEvents(
  discovery: DiscoveryService,
  scanner: MetadataScanner,
  reflector: Reflector,
): Map<string, ChatEventHandler> {
  const handlers = new Map<string, ChatEventHandler>();
  const owners = new Map<string, string>();
  for (const wrapper of discovery.getProviders()) {
    const instance: unknown = wrapper.instance;
    if (!instance || typeof instance !== 'object' || !wrapper.isDependencyTreeStatic()) continue;
    const prototype = Object.getPrototypeOf(instance) as object | null;
    for (const name of scanner.getAllMethodNames(prototype)) {
      const method = (instance as Record<string, unknown>)[name];
      if (typeof method !== 'function') continue;
      const type = reflector.get<string | undefined>(CHAT_EVENT, method as () => unknown);
      if (type === undefined) continue;
      const owner = `${instance.constructor.name}.${name}`;
      const taken = owners.get(type);
      if (taken) {
        throw new Error(`ChatModule: two handlers for the event ${type}: ${taken} and ${owner}`);
      }
      owners.set(type, owner);
      handlers.set(type, (context) => (method as ChatEventHandler).call(instance, context));
    }
  }
  return handlers;
}

/**
 * The app's client events: each declared type's frames go to its handler, in each sender's order;
 * an undeclared type gets `unknown_type`. A handler that throws costs only its sender an error
 * frame; one that finishes acknowledges a frame that carried an `id`.
 */
export class ChatEvents {
  private handlers = new Map<string, ChatEventHandler>();

  constructor(
    private readonly layer: ChannelLayer,
    private readonly outbox: Outbox,
    private readonly logger: Logger,
  ) {}

  /** Finds the app's `@ChatEvent` handlers, once every provider is built. */
  discover(discovery: DiscoveryService, scanner: MetadataScanner, reflector: Reflector): void {
    this.handlers = discoverChatEvents(discovery, scanner, reflector);
  }

  /** Handles a client's event frame. */
  receive(connection: Connection, event: EventClientFrame): void {
    const handler = this.handlers.get(event.type);
    if (!handler) {
      const why = `no event ${JSON.stringify(event.type)} here: send {"message": "..."} or a declared type`;
      connection.inOrder(async () =>
        this.outbox.error(connection, ErrorCode.UnknownType, why, event.id),
      );
      return;
    }
    // The channel now: leaving clears it, and a handler that runs late still knows its socket.
    const channel = connection.channel as string;
    if (!connection.inOrder(() => this.handle(connection, channel, event, handler))) {
      this.outbox.error(connection, ErrorCode.RateLimited, TOO_MANY_WAITING, event.id);
    }
  }

  private async handle(
    connection: Connection,
    channel: string,
    event: EventClientFrame,
    handler: ChatEventHandler,
  ): Promise<void> {
    // A frame still waiting when its socket closed is not handled.
    if (connection.closed) return;
    const { outbox, layer } = this;
    const { room } = connection;
    const context: ChatEventContext = {
      type: event.type,
      frame: event.frame,
      user: connection.user,
      userName: connection.userName,
      room,
      connectionId: channel,
      reply(frame) {
        outbox.reply(connection, new TextFrame(hostMessage(frame).text));
      },
      async emit(frame, options) {
        await layer.groupSend(room, hostMessage(frame, options?.exceptSelf ? channel : undefined));
      },
    };
    try {
      await handler(context);
    } catch (error) {
      if (connection.socket.readyState !== WebSocket.OPEN) return;
      if (error instanceof ChatMessageRejected) {
        outbox.error(connection, error.code, error.message, event.id);
      } else if (error instanceof ChannelLayerUnavailable) {
        outbox.error(
          connection,
          ErrorCode.LayerUnavailable,
          `${event.type} not handled: channel layer unavailable`,
          event.id,
        );
      } else {
        this.logger.error(`handler of ${event.type} failed: ${errorText(error)}`);
        outbox.error(
          connection,
          ErrorCode.InternalError,
          `${event.type} not handled: server error`,
          event.id,
        );
      }
      return;
    }
    if (event.id !== undefined) outbox.ack(connection, event.id);
  }
}
