import { join } from 'node:path';
import { ConfigurableModuleBuilder, DynamicModule } from '@nestjs/common';
import type { ServerResponse } from 'node:http';
import type { AbstractHttpAdapter, ApplicationConfig } from '@nestjs/core';
import type { AbstractLoader, ServeStaticModuleOptions } from '@nestjs/serve-static';
import {
  ROOMS_API_DEFAULT_LIMIT,
  ROOMS_API_LIMIT,
  RoomsController,
} from '../rooms/rooms.controller.js';
import { PACKAGE_ROOT } from '../package-root.cjs';
import { ChatModuleExtras, ChatModuleOptions } from './chat.options.js';

/** Where the lobby page lives, from src/ (tests) and either build of the package alike. */
export const LOBBY_DIR = join(PACKAGE_ROOT, 'client');

/**
 * The lobby's Content-Security-Policy, sent as a header with each of its files: scripts, styles
 * and sockets from this server only, so a message that slipped into the DOM as HTML still could
 * not run; and no framing (`frame-ancestors` works only as a header). `client/index.html` carries
 * the same policy, less `frame-ancestors`, in a `<meta>`.
 */
export const LOBBY_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

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
  const serveRoot =
    typeof lobby === 'object' && lobby.route && lobby.route !== '/' ? lobby.route : '';
  return {
    ...module,
    imports: [...(module.imports ?? []), lobbyModule(serveRoot)],
  };
}

/**
 * `@nestjs/serve-static` is an optional peer, loaded only for a lobby: hosts that do not serve
 * it need not install it, and those that do get the version of their Nest major.
 */
async function lobbyModule(serveRoot: string): Promise<DynamicModule> {
  let serveStatic: typeof import('@nestjs/serve-static');
  try {
    serveStatic = await import('@nestjs/serve-static');
  } catch (error) {
    throw new Error(
      'ChatModule: `lobby` needs @nestjs/serve-static (^5 on Nest 11, ^12 on Nest 12): ' +
        'npm install @nestjs/serve-static',
      { cause: error },
    );
  }
  const lobby = serveStatic.ServeStaticModule.forRoot({
    rootPath: LOBBY_DIR,
    serveRoot,
    renderPath: serveRoot || '/',
    serveStaticOptions: { setHeaders: setLobbyHeaders },
  });
  // Provided after serve-static's own, so it replaces it in this module.
  return {
    ...lobby,
    providers: [
      ...(lobby.providers ?? []),
      { provide: serveStatic.AbstractLoader, useValue: lateLoader(serveStatic) },
    ],
  };
}

/**
 * serve-static picks its loader when its module is built, from the HTTP adapter the app has by
 * then; a testing module has none yet, so in a host's e2e test (`Test.createTestingModule`) it
 * would pick the one that serves nothing (nestjs/serve-static#240). This one picks when it
 * registers, at init, when every app has its adapter: the lobby is served there too.
 */
function lateLoader(serveStatic: typeof import('@nestjs/serve-static')): AbstractLoader {
  class LateLoader extends serveStatic.AbstractLoader {
    register(
      httpAdapter: AbstractHttpAdapter,
      config: ApplicationConfig,
      options: ServeStaticModuleOptions[],
    ): void {
      const loader =
        httpAdapter.constructor.name === 'FastifyAdapter'
          ? new serveStatic.FastifyLoader()
          : new serveStatic.ExpressLoader();
      loader.register(httpAdapter, config, options);
    }
  }
  return new LateLoader();
}

/** serve-static's `setHeaders`, for every lobby file (index.html at the render path too). */
function setLobbyHeaders(response: ServerResponse): void {
  response.setHeader('Content-Security-Policy', LOBBY_CSP);
}
