import { createHash } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { ChannelLayer } from '../channel-layer/channel-layer.js';
import { ChatRecord, RoomState } from '../rooms/room-state.js';
import { CHAT_MODULE_OPTIONS } from './chat.module-definition.js';
import { type ChatModuleOptions, resolveChatOptions } from './chat.options.js';
import {
  CHAT_MESSAGE,
  HOST_FRAME,
  HostFrame,
  InvalidChatFrame,
  RESERVED_GROUP_PREFIX,
  hostFrameProblem,
} from './chat.protocol.js';

/** A process-local channel of the chat's sockets: `chat.<layer id>!<random>`. */
const CONNECTION_ID = /^chat\.[A-Za-z0-9\-_.]+![A-Za-z0-9\-_.]+$/;

/** The group of every socket of the user `userId` (as `authenticate` returned it). */
export function userGroup(userId: string): string {
  const digest = createHash('sha256').update(userId).digest('base64url');
  return `${RESERVED_GROUP_PREFIX}user.${digest}`;
}

/** The layer message a host frame travels as: its JSON, made once; `except`, a channel left out. */
export interface HostMessage {
  type: typeof HOST_FRAME;
  text: string;
  except?: string;
  [key: string]: unknown;
}

/** The layer message that carries `frame`; throws `InvalidChatFrame` for a frame it cannot. */
export function hostMessage(frame: HostFrame, except?: string): HostMessage {
  const problem = hostFrameProblem(frame);
  if (problem) throw new InvalidChatFrame(problem);
  let text: string;
  try {
    text = JSON.stringify(frame);
  } catch (error) {
    throw new InvalidChatFrame(`the frame is not JSON: ${(error as Error).message}`);
  }
  return except === undefined ? { type: HOST_FRAME, text } : { type: HOST_FRAME, text, except };
}

/**
 * Reaches rooms, users and sockets from anywhere in the app (a controller, a cron job, a queue
 * worker, an event handler), on every process the layer spans. `send` posts a chat message, as a
 * client would; `emit`, `sendToUser` and `sendToConnection` send frames of the host's own types,
 * serialized once per process however many sockets get them.
 */
@Injectable()
export class ChatRooms {
  private readonly defaultRoom: string;

  constructor(
    private readonly layer: ChannelLayer,
    private readonly rooms: RoomState,
    @Inject(CHAT_MODULE_OPTIONS) options: ChatModuleOptions,
  ) {
    this.defaultRoom = resolveChatOptions(options).group;
  }

  /**
   * Sends `message` to every socket of `room` (the module's default room unless given), from
   * `user` (default `'system'`). Resolves with the record as sent; rejects with the layer's or the
   * store's error (`ChannelLayerUnavailable`, ...).
   */
  async send(message: string, options: { room?: string; user?: string } = {}): Promise<ChatRecord> {
    const room = options.room ?? this.defaultRoom;
    if (room.startsWith(RESERVED_GROUP_PREFIX)) {
      throw new InvalidChatFrame(`no room begins with ${RESERVED_GROUP_PREFIX}`);
    }
    return this.rooms.appendAndSend(
      room,
      { message, user: options.user ?? 'system' },
      this.layer,
      CHAT_MESSAGE,
    );
  }

  /**
   * Sends `frame` to every socket of `room`. Not kept in history. Throws `InvalidChatFrame` for a
   * frame that is not an object or whose `type` is bad or the chat's own; rejects with the layer's
   * error.
   */
  async emit(room: string, frame: HostFrame): Promise<void> {
    if (room.startsWith(RESERVED_GROUP_PREFIX)) {
      throw new InvalidChatFrame(`no room begins with ${RESERVED_GROUP_PREFIX}: use sendToUser`);
    }
    await this.layer.groupSend(room, hostMessage(frame));
  }

  /** Sends `frame` to every socket of the user `userId` (`authenticate`'s `id`), in any room. */
  async sendToUser(userId: string, frame: HostFrame): Promise<void> {
    await this.layer.groupSend(userGroup(userId), hostMessage(frame));
  }

  /**
   * Sends `frame` to one socket, by the `connectionId` an event handler saw; throws
   * `InvalidChatFrame` for an id of another shape. A socket that has closed gets nothing: the
   * layer holds the frame (up to its `capacity` per id) until its `expiry`, then drops it, so
   * pass on ids your own code got from the chat, not any a client names.
   */
  async sendToConnection(connectionId: string, frame: HostFrame): Promise<void> {
    if (!CONNECTION_ID.test(connectionId)) {
      throw new InvalidChatFrame(`${JSON.stringify(connectionId)} is no chat connection id`);
    }
    await this.layer.send(connectionId, hostMessage(frame));
  }

  /** Who is in `room` now: user names, sorted, each once. */
  users(room: string = this.defaultRoom): Promise<string[]> {
    return this.rooms.users(room);
  }
}
