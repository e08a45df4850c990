import { ConfigurableModuleBuilder, DynamicModule } from '@nestjs/common';
import {
  ROOMS_API_DEFAULT_LIMIT,
  ROOMS_API_LIMIT,
  RoomsController,
} from '../rooms/rooms.controller.js';
import { HttpAdapterHost } from '@nestjs/core';
import {
  ChatModuleExtras,
  ChatModuleOptions,
  resolveChatOptions,
  urlPath,
} from './chat.options.js';
import { LOBBY_ROUTE, LobbyRoutes } from './lobby.js';

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
  return withLobby(withRoomsApi(module, extras), extras);
}

function withRoomsApi(module: DynamicModule, { roomsApi }: ChatModuleExtras): DynamicModule {
  if (!roomsApi) return module;
  const limit =
    (typeof roomsApi === 'object' ? roomsApi.limit : undefined) ?? ROOMS_API_DEFAULT_LIMIT;
  if (!Number.isInteger(limit) || limit < 1) {
    throw new TypeError(`roomsApi.limit must be a positive integer, got ${String(limit)}`);
  }
  return {
    ...module,
    controllers: [...(module.controllers ?? []), RoomsController],
    providers: [...(module.providers ?? []), { provide: ROOMS_API_LIMIT, useValue: limit }],
  };
}

function withLobby(module: DynamicModule, { lobby }: ChatModuleExtras): DynamicModule {
  if (!lobby) return module;
  const route =
    typeof lobby === 'object' && lobby.route ? urlPath('lobby.route', lobby.route, '/chat') : '/';
  return {
    ...module,
    providers: [
      ...(module.providers ?? []),
      { provide: LOBBY_ROUTE, useValue: route },
      {
        provide: LobbyRoutes,
        useFactory: (options: ChatModuleOptions, adapterHost?: HttpAdapterHost) =>
          new LobbyRoutes(route, resolveChatOptions(options).path, adapterHost),
        inject: [CHAT_MODULE_OPTIONS, { token: HttpAdapterHost, optional: true }],
      },
    ],
  };
}
