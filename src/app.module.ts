import { DynamicModule, Module } from '@nestjs/common';
import { ChatModule } from './chat/chat.module';
import { ChatModuleOptions } from './chat/chat.options';
import { HealthModule } from './health/health.module';

/** The runnable app: the chat, with its lobby page at `/`, `/health` and `/metrics`. */
@Module({})
export class AppModule {
  static forRoot(chat: ChatModuleOptions = {}): DynamicModule {
    const chatModule = ChatModule.forRoot({ ...chat, lobby: true, roomsApi: true });
    return {
      module: AppModule,
      imports: [chatModule, HealthModule.forChat(chatModule)],
    };
  }
}
