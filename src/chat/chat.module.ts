import {
  DynamicModule,
  Inject,
  Module,
  OnApplicationShutdown,
  Provider,
  Type,
} from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { ChannelLayer } from '../channel-layer/channel-layer';
import { InMemoryChannelLayer } from '../channel-layer/in-memory-channel-layer';
import { ChatMetrics } from './chat-metrics';
import { ChatRooms } from './chat-rooms';
import { ChatGateway } from './chat.gateway';
import {
  CHAT_ASYNC_OPTIONS_TYPE,
  CHAT_MODULE_OPTIONS,
  CHAT_OPTIONS_TYPE,
  ChatConfigurableModule,
} from './chat.module-definition';
import { ChannelLayerSource, ChatModuleOptions } from './chat.options';

/** The layer a module built (and so closes), or the caller's (who closes it). */
interface LayerHandle {
  layer: ChannelLayer;
  owned: boolean;
}

const LAYER_HANDLE = Symbol('chat-layer-handle');

/** Layers are built here only, so `overrideProvider(ChannelLayer)` replaces them in tests. */
const layerProviders: Provider[] = [
  {
    provide: LAYER_HANDLE,
    useFactory: (options: ChatModuleOptions, moduleRef: ModuleRef) =>
      buildLayer(options.layer, moduleRef),
    inject: [CHAT_MODULE_OPTIONS, ModuleRef],
  },
  {
    provide: ChannelLayer,
    useFactory: (handle: LayerHandle) => handle.layer,
    inject: [LAYER_HANDLE],
  },
];

async function buildLayer(
  source: ChannelLayerSource | undefined,
  moduleRef: ModuleRef,
): Promise<LayerHandle> {
  if (source === undefined) return { layer: new InMemoryChannelLayer(), owned: true };
  if (source instanceof ChannelLayer) return { layer: source, owned: false };
  if (source.prototype instanceof ChannelLayer) {
    return { layer: await moduleRef.create(source as Type<ChannelLayer>), owned: true };
  }
  const layer = await (source as () => ChannelLayer | Promise<ChannelLayer>)();
  if (!(layer instanceof ChannelLayer)) {
    throw new TypeError('ChatModule: the layer factory must return a ChannelLayer');
  }
  return { layer, owned: true };
}

/**
 * The seed's chat as a module: a WebSocket gateway on a `ChannelLayer`, in memory unless a layer
 * is given. Exports `ChannelLayer` and `ChatRooms`, so the app reaches rooms from anywhere, and
 * `ChatMetrics` (Prometheus), which `HealthModule.forChat` serves.
 * Needs `app.useWebSocketAdapter(new ChatWsAdapter(app))`.
 */
@Module({})
export class ChatModule extends ChatConfigurableModule implements OnApplicationShutdown {
  constructor(@Inject(LAYER_HANDLE) private readonly handle: LayerHandle) {
    super();
  }

  static override forRoot(options: typeof CHAT_OPTIONS_TYPE = {}): DynamicModule {
    return withGateway(super.forRoot(options));
  }

  static override forRootAsync(options: typeof CHAT_ASYNC_OPTIONS_TYPE): DynamicModule {
    return withGateway(super.forRootAsync(options));
  }

  /** Runs after the WebSocket servers closed, so sockets could still leave their groups. */
  async onApplicationShutdown(): Promise<void> {
    if (this.handle.owned) await this.handle.layer.close();
  }
}

function withGateway(module: DynamicModule): DynamicModule {
  // Nest keys a gateway's path on its class: one subclass per module keeps modules apart.
  class ModuleChatGateway extends ChatGateway {}
  return {
    ...module,
    providers: [
      ...(module.providers ?? []),
      ...layerProviders,
      ChatRooms,
      ChatMetrics,
      ModuleChatGateway,
    ],
    exports: [...(module.exports ?? []), ChannelLayer, ChatRooms, ChatMetrics],
  };
}
