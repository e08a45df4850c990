import { DynamicModule, Module } from '@nestjs/common';
import { ChatModule } from './chat/chat.module.js';
import { ChatModuleOptions, RoomsApiOptions } from './chat/chat.options.js';
import { HealthModule } from './health/health.module.js';
import { RoomsTurnedOffController } from './rooms/rooms.controller.js';
import { TypingEvents } from './typing.events.js';

/** What the runnable app decides beside ChatModule's options. */
export interface AppOptions {
  /**
   * `GET /api/rooms`: listed, or `false` for a 404 that says the list is turned off.
   * @default { limit: 100 }
   */
  roomsApi?: RoomsApiOptions | false;
}

/**
 * The runnable app: the chat, with its lobby page at `/` and the lobby's typing indicator,
 * `/health` and `/metrics`.
 */
@Module({})
export class AppModule {
  static forRoot(chat: ChatModuleOptions = {}, app: AppOptions = {}): DynamicModule {
    const roomsApi = app.roomsApi ?? true;
    const chatModule = ChatModule.forRoot({ ...chat, lobby: true, roomsApi });
    return {
      module: AppModule,
      imports: [chatModule, HealthModule.forChat(chatModule)],
      controllers: roomsApi ? [] : [RoomsTurnedOffController],
      providers: [TypingEvents],
    };
  }
}
