import { Inject, Injectable } from '@nestjs/common';
import { ChannelLayer } from '../channel-layer/channel-layer.js';
import { ChatRecord, RoomState } from '../rooms/room-state.js';
import { CHAT_MODULE_OPTIONS } from './chat.module-definition.js';
import { type ChatModuleOptions, resolveChatOptions } from './chat.options.js';
import { CHAT_MESSAGE } from './chat.protocol.js';

/**
 * Posts into rooms from anywhere in the app (a controller, a cron job, a queue worker): the
 * room's sockets get a `chat` frame, exactly as if a client had sent it, and it enters the room's
 * history.
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
    return this.rooms.appendAndSend(
      options.room ?? this.defaultRoom,
      { message, user: options.user ?? 'system' },
      this.layer,
      CHAT_MESSAGE,
    );
  }

  /** Who is in `room` now: user names, sorted, each once. */
  users(room: string = this.defaultRoom): Promise<string[]> {
    return this.rooms.users(room);
  }
}
