import { DynamicModule, Inject, Module, OnApplicationShutdown, Provider } from '@nestjs/common';
import { DiscoveryModule, ModuleRef } from '@nestjs/core';
import { ChannelLayer } from '../channel-layer/channel-layer.js';
import { InMemoryChannelLayer } from '../channel-layer/in-memory-channel-layer.js';
import { InMemoryRoomState } from '../rooms/in-memory-room-state.js';
import { RoomState } from '../rooms/room-state.js';
import { ChatMetrics } from './chat-metrics.js';
import { ChatRooms } from './chat-rooms.js';
import { ChatGateway } from './chat.gateway.js';
import {
  CHAT_ASYNC_OPTIONS_TYPE,
  CHAT_MODULE_OPTIONS,
  CHAT_OPTIONS_TYPE,
  ChatConfigurableModule,
} from './chat.module-definition.js';
import { type ChatModuleOptions, resolveChatOptions } from './chat.options.js';
import { type Owned, buildOwned } from './owned.js';

const LAYER_HANDLE = Symbol('chat-layer-handle');
const ROOM_STATE_HANDLE = Symbol('chat-room-state-handle');

/** Layers and room stores are built here only, so `overrideProvider` replaces them in tests. */
const stateProviders: Provider[] = [
  {
    provide: LAYER_HANDLE,
    useFactory: (options: ChatModuleOptions, moduleRef: ModuleRef) =>
      buildOwned(ChannelLayer, options.layer, () => new InMemoryChannelLayer(), moduleRef),
    inject: [CHAT_MODULE_OPTIONS, ModuleRef],
  },
  {
    provide: ChannelLayer,
    useFactory: (handle: Owned<ChannelLayer>) => handle.value,
    inject: [LAYER_HANDLE],
  },
  {
    provide: ROOM_STATE_HANDLE,
    useFactory: (options: ChatModuleOptions, moduleRef: ModuleRef) =>
      buildOwned(
        RoomState,
        options.roomState,
        () =>
          new InMemoryRoomState({
            historyLimit: resolveChatOptions(options).historyLimit,
            historyBytes: options.historyBytes,
            maxHistoryBytes: options.maxHistoryBytes,
            maxRooms: options.maxRooms,
            resendWindowMs: options.resendWindowMs,
            maxResendIds: options.maxResendIds,
          }),
        moduleRef,
      ),
    inject: [CHAT_MODULE_OPTIONS, ModuleRef],
  },
  {
    provide: RoomState,
    useFactory: (handle: Owned<RoomState>) => handle.value,
    inject: [ROOM_STATE_HANDLE],
  },
];

/**
 * The seed's chat as a module: a WebSocket gateway on a `ChannelLayer`, in memory unless a layer
 * is given. Exports `ChannelLayer` and `ChatRooms`, so the app reaches rooms from anywhere, and
 * `ChatMetrics` (Prometheus), which `HealthModule.forChat` serves.
 * Its endpoint is served on the app's own HTTP server once the app is initialised: importing the
 * module is the whole integration, whatever WebSocket adapter the app uses for its own gateways.
 */
@Module({})
export class ChatModule extends ChatConfigurableModule implements OnApplicationShutdown {
  constructor(
    @Inject(LAYER_HANDLE) private readonly layer: Owned<ChannelLayer>,
    @Inject(ROOM_STATE_HANDLE) private readonly roomState: Owned<RoomState>,
  ) {
    super();
  }

  static override forRoot(options: typeof CHAT_OPTIONS_TYPE = {}): DynamicModule {
    resolveChatOptions(options); // a mistake in them throws here, at the app's import
    return withGateway(super.forRoot(options));
  }

  static override forRootAsync(options: typeof CHAT_ASYNC_OPTIONS_TYPE): DynamicModule {
    return withGateway(super.forRootAsync(options));
  }

  /** Runs after the WebSocket servers closed, so sockets could still leave their groups. */
  async onApplicationShutdown(): Promise<void> {
    if (this.roomState.owned) await this.roomState.value.close();
    if (this.layer.owned) await this.layer.value.close();
  }
}

function withGateway(module: DynamicModule): DynamicModule {
  return {
    ...module,
    imports: [...(module.imports ?? []), DiscoveryModule],
    providers: [
      ...(module.providers ?? []),
      ...stateProviders,
      ChatRooms,
      ChatMetrics,
      ChatGateway,
    ],
    exports: [...(module.exports ?? []), ChannelLayer, RoomState, ChatRooms, ChatMetrics],
  };
}
