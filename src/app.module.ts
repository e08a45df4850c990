import { join } from 'node:path';
import { DynamicModule, Module } from '@nestjs/common';
import { ServeStaticModule } from '@nestjs/serve-static';
import { ChatModule } from './chat/chat.module';
import { ChatModuleOptions } from './chat/chat.options';

/** Where the lobby lives, from both src/ (tests) and dist/ (npm start). */
export const CLIENT_DIR = join(__dirname, '..', 'client');

/** The runnable app: the chat plus the lobby page at `/`. */
@Module({})
export class AppModule {
  static forRoot(chat: ChatModuleOptions = {}): DynamicModule {
    return {
      module: AppModule,
      imports: [ChatModule.forRoot(chat), ServeStaticModule.forRoot({ rootPath: CLIENT_DIR })],
    };
  }
}
