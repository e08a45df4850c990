import { INestApplicationContext, Logger } from '@nestjs/common';
import { WsAdapter } from '@nestjs/platform-ws';

/**
 * @deprecated Not needed any more: `ChatModule` serves its endpoint on the app's HTTP server by
 * itself. Delete `app.useWebSocketAdapter(new ChatWsAdapter(app))` from `main.ts`; for gateways
 * of your own on plain `ws`, use Nest's `WsAdapter`. Until then this is Nest's `WsAdapter`, so
 * the app keeps working: the chat as before, your own gateways as Nest serves them.
 */
export class ChatWsAdapter extends WsAdapter {
  /** `_options`: what earlier releases took; `closeTimeoutMs` is now a ChatModule option. */
  constructor(
    appOrHttpServer?: INestApplicationContext | object,
    _options?: { closeTimeoutMs?: number },
  ) {
    super(appOrHttpServer);
    new Logger('ChatWsAdapter').warn(
      'ChatWsAdapter is deprecated and no longer needed: ChatModule serves its endpoint itself. ' +
        "Delete app.useWebSocketAdapter(new ChatWsAdapter(app)), or use @nestjs/platform-ws' " +
        'WsAdapter for gateways of your own.',
    );
  }
}
