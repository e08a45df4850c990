import { Inject, Injectable } from '@nestjs/common';
import { ChannelLayer } from '../channel-layer/channel-layer';
import { CHAT_MODULE_OPTIONS } from './chat.module-definition';
import { ChatModuleOptions, resolveChatOptions } from './chat.options';
import { CHAT_MESSAGE } from './chat.protocol';

/**
 * Posts into rooms from anywhere in the app (a controller, a cron job, a queue worker): the
 * room's sockets get a `chat` frame, exactly as if a client had sent it.
 */
@Injectable()
export class ChatRooms {
  private readonly defaultRoom: string;

  constructor(
    private readonly layer: ChannelLayer,
    @Inject(CHAT_MODULE_OPTIONS) options: ChatModuleOptions,
  ) {
    this.defaultRoom = resolveChatOptions(options).group;
  }

  /**
   * Sends `message` to every socket of `room` (the module's group by default), with `user` as its
   * sender's name when given. Rejects with the layer's error (`ChannelLayerUnavailable`, ...).
   */
  async send(message: string, options: { room?: string; user?: string } = {}): Promise<void> {
    const user = options.user;
    await this.layer.groupSend(
      options.room ?? this.defaultRoom,
      user === undefined ? { type: CHAT_MESSAGE, message } : { type: CHAT_MESSAGE, message, user },
    );
  }
}
