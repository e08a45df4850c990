import { Body, Controller, HttpCode, Injectable, Param, Post } from '@nestjs/common';
import {
  ChatEvent,
  type ChatEventContext,
  ChatMessageRejected,
  ChatRooms,
} from '../../src/index.js';

const REACTIONS = new Set(['👍', '🎉', '❤️', '😂']);

/** The host's own real-time features, on the chat's rails: each method handles one client event. */
@Injectable()
export class ChatFeatures {
  constructor(private readonly rooms: ChatRooms) {}

  /** `{"type":"typing"}` → the rest of the room sees `{"type":"typing","user":...}`. */
  @ChatEvent('typing')
  async typing(event: ChatEventContext): Promise<void> {
    await event.emit({ type: 'typing', user: event.userName }, { exceptSelf: true });
  }

  /** `{"type":"react","message_id":...,"emoji":"👍"}` → everyone in the room sees the reaction. */
  @ChatEvent('react')
  async react(event: ChatEventContext<{ message_id?: unknown; emoji?: unknown }>): Promise<void> {
    const { message_id: messageId, emoji } = event.frame;
    if (typeof messageId !== 'string' || typeof emoji !== 'string' || !REACTIONS.has(emoji)) {
      throw new ChatMessageRejected(
        `react with one of ${[...REACTIONS].join(' ')}`,
        'bad_reaction',
      );
    }
    await event.emit({ type: 'reaction', message_id: messageId, emoji, user: event.userName });
  }

  /** `{"type":"whisper","to":<user id>,"text":...}` → every socket of that user, on any process. */
  @ChatEvent('whisper')
  async whisper(event: ChatEventContext<{ to?: unknown; text?: unknown }>): Promise<void> {
    const { to, text } = event.frame;
    if (!event.user) throw new ChatMessageRejected('log in to whisper', 'login_required');
    if (typeof to !== 'string' || typeof text !== 'string' || text.length > 500) {
      throw new ChatMessageRejected('whisper {"to": <user id>, "text": <up to 500 characters>}');
    }
    await this.rooms.sendToUser(to, { type: 'whisper', from: event.user.id, text });
    event.reply({ type: 'whispered', to });
  }

  /** `{"type":"whoami"}` → this socket alone learns its connection id and user. */
  @ChatEvent('whoami')
  whoami(event: ChatEventContext): void {
    event.reply({ type: 'you', connection_id: event.connectionId, user: event.user?.id ?? null });
  }
}

/** Notifications from HTTP: to a user's every socket, or to one socket. */
@Controller('api')
export class NotificationsController {
  constructor(private readonly rooms: ChatRooms) {}

  @Post('users/:id/notifications')
  @HttpCode(202)
  async notifyUser(@Param('id') id: string, @Body() body: { text: string }): Promise<void> {
    await this.rooms.sendToUser(id, { type: 'notification', text: body.text });
  }

  @Post('connections/:id/notifications')
  @HttpCode(202)
  async notifyConnection(@Param('id') id: string, @Body() body: { text: string }): Promise<void> {
    await this.rooms.sendToConnection(id, { type: 'notification', text: body.text });
  }
}
