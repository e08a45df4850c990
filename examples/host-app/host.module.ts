import type { IncomingMessage } from 'node:http';
import { Body, Controller, Get, HttpCode, Module, Post } from '@nestjs/common';
import {
  ChannelLayer,
  ChatMessageRejected,
  ChatModule,
  ChatRooms,
  ChatUser,
  RedisChannelLayer,
  RedisRoomState,
} from '../../src/index.js';
import { AuditedChannelLayer } from './audited-channel-layer.js';
import { ChatFeatures, NotificationsController } from './chat-features.js';
import { Settings, SettingsModule } from './settings.js';

/** Who came and went, as the chat hooks reported it. */
export class Attendance {
  readonly events: string[] = [];
}

@Module({ providers: [Attendance], exports: [Attendance] })
export class AttendanceModule {}

/** The token from `?token=`, `Authorization: Bearer` or the `session` cookie. */
function tokenOf(request: IncomingMessage): string | undefined {
  const query = new URL(request.url ?? '/', 'http://host').searchParams.get('token');
  const bearer = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1];
  const cookie = /(?:^|;\s*)session=([^;]+)/.exec(request.headers.cookie ?? '')?.[1];
  return query ?? bearer ?? cookie ?? undefined;
}

/** The host's own API, which was there before the chat. */
@Controller('api')
export class StatusController {
  @Get('status')
  status(): { ok: true } {
    return { ok: true };
  }
}

/** Posts into the chat from HTTP: the most common thing Channels users ask how to do. */
@Controller('api/announcements')
export class AnnouncementsController {
  constructor(
    private readonly rooms: ChatRooms,
    private readonly layer: ChannelLayer,
  ) {}

  @Post()
  @HttpCode(202)
  async announce(@Body() body: { text: string }): Promise<{ sent: number }> {
    await this.rooms.send(body.text, { user: 'system' });
    const sent = this.layer instanceof AuditedChannelLayer ? this.layer.sentByGroup : undefined;
    return { sent: sent?.get('lobby') ?? 0 };
  }
}

@Module({
  imports: [
    SettingsModule,
    ChatModule.forRootAsync({
      imports: [SettingsModule, AttendanceModule],
      inject: [Settings, Attendance],
      useFactory: (settings: Settings, attendance: Attendance) => ({
        path: settings.chatPath,
        group: 'lobby',
        // In memory, counting what it sends; on Redis when the settings name one.
        layer: settings.redisUrl
          ? () => new RedisChannelLayer({ hosts: settings.redisUrl, prefix: settings.redisPrefix })
          : AuditedChannelLayer,
        roomState: settings.redisUrl
          ? () => new RedisRoomState({ hosts: settings.redisUrl, prefix: settings.redisPrefix })
          : undefined,
        authenticate: (request: IncomingMessage): ChatUser | undefined =>
          settings.sessions[tokenOf(request) ?? ''],
        // The staff room is for staff only: anyone else's handshake gets HTTP 403.
        canJoin: ({ user, room }) => room !== 'staff' || user?.staff === true,
        onMessage: async ({ message }) => {
          const text = message.trim();
          if (text === '') throw new ChatMessageRejected('say something', 'empty_message');
          if (settings.bannedWords.some((word) => text.includes(word))) {
            throw new ChatMessageRejected('that word is not allowed here');
          }
          return text;
        },
        onConnect: ({ user }) => void attendance.events.push(`+${user?.name}`),
        onDisconnect: ({ user }) => void attendance.events.push(`-${user?.name}`),
      }),
    }),
  ],
  controllers: [StatusController, AnnouncementsController, NotificationsController],
  providers: [ChatFeatures],
})
export class HostModule {}
