import { join } from 'node:path';
import { ConfigurableModuleBuilder, DynamicModule } from '@nestjs/common';
import { ServeStaticModule } from '@nestjs/serve-static';
import { RoomsController } from '../rooms/rooms.controller';
import { ChatModuleExtras, ChatModuleOptions } from './chat.options';

/** Where the lobby page lives, from src/ (tests) and dist/ (the package) alike. */
export const LOBBY_DIR = join(__dirname, '..', '..', 'client');

/**
 * `forRoot` / `forRootAsync` for free, as in nestjs/cache-manager. `lobby` and `roomsApi` are
 * extras: they decide what the module imports and serves, so they cannot come from a factory.
 */
export const {
  ConfigurableModuleClass: ChatConfigurableModule,
  MODULE_OPTIONS_TOKEN: CHAT_MODULE_OPTIONS,
  OPTIONS_TYPE: CHAT_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: CHAT_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<ChatModuleOptions>()
  .setClassMethodName('forRoot')
  .setExtras<ChatModuleExtras>({ lobby: false, roomsApi: false }, withExtras)
  .build();

function withExtras(module: DynamicModule, extras: ChatModuleExtras): DynamicModule {
  const withApi = extras.roomsApi
    ? { ...module, controllers: [...(module.controllers ?? []), RoomsController] }
    : module;
  return withLobby(withApi, extras);
}

function withLobby(module: DynamicModule, { lobby }: ChatModuleExtras): DynamicModule {
  if (!lobby) return module;
  const serveRoot =
    typeof lobby === 'object' && lobby.route && lobby.route !== '/' ? lobby.route : '';
  return {
    ...module,
    imports: [
      ...(module.imports ?? []),
      ServeStaticModule.forRoot({ rootPath: LOBBY_DIR, serveRoot, renderPath: serveRoot || '/' }),
    ],
  };
}
