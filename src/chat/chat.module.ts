import { DynamicModule, Inject, Module, OnApplicationShutdown, Provider } from '@nestjs/common';
import { ChannelLayer } from '../channel-layer/channel-layer';
import { InMemoryChannelLayer } from '../channel-layer/in-memory-channel-layer';
import { ChatGateway } from './chat.gateway';
import {
  CHAT_ASYNC_OPTIONS_TYPE,
  CHAT_MODULE_OPTIONS,
  CHAT_OPTIONS_TYPE,
  ChatConfigurableModule,
} from './chat.module-definition';
import { ChatModuleOptions } from './chat.options';

/** The layer is built here only, so `overrideProvider(ChannelLayer)` replaces it in tests. */
const layerProvider: Provider = {
  provide: ChannelLayer,
  useFactory: (options: ChatModuleOptions) => options.layer ?? new InMemoryChannelLayer(),
  inject: [CHAT_MODULE_OPTIONS],
};

/**
 * The seed's chat as a module: a WebSocket gateway on a `ChannelLayer`, in memory unless a layer
 * is given. Exports `ChannelLayer`, so the app can `groupSend` to rooms from anywhere.
 * Needs `app.useWebSocketAdapter(new ChatWsAdapter(app))`.
 */
@Module({})
export class ChatModule extends ChatConfigurableModule implements OnApplicationShutdown {
  constructor(
    @Inject(CHAT_MODULE_OPTIONS) private readonly options: ChatModuleOptions,
    private readonly layer: ChannelLayer,
  ) {
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
    if (!this.options.layer) await this.layer.close();
  }
}

function withGateway(module: DynamicModule): DynamicModule {
  // Nest keys a gateway's path on its class: one subclass per module keeps modules apart.
  class ModuleChatGateway extends ChatGateway {}
  return {
    ...module,
    providers: [...(module.providers ?? []), layerProvider, ModuleChatGateway],
    exports: [...(module.exports ?? []), ChannelLayer],
  };
}
