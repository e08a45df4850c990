import { DynamicModule, Module } from '@nestjs/common';
import { ChatModule } from './chat/chat.module';
import { ChatModuleOptions } from './chat/chat.options';

/** The runnable app: the chat, with its lobby page at `/`. */
@Module({})
export class AppModule {
  static forRoot(chat: ChatModuleOptions = {}): DynamicModule {
    return {
      module: AppModule,
      imports: [ChatModule.forRoot({ ...chat, lobby: true })],
    };
  }
}
