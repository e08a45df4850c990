import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module';
import { ChatWsAdapter } from './chat/chat-ws.adapter';
import { createAppLogger } from './app-logger';
import { RedisChannelLayer } from './channel-layer/redis-channel-layer';
import { ChatModuleOptions } from './chat/chat.options';
import { RedisRoomState } from './rooms/redis-room-state';
import { AppConfig, loadConfig } from './config';
import { closeOnSignals } from './shutdown';

/** The layer (and room store) the environment asks for; the in-memory defaults otherwise. */
function stateFor(config: AppConfig): Pick<ChatModuleOptions, 'layer' | 'roomState'> {
  if (config.channelLayer === 'memory') return {};
  const redis = { hosts: config.redisUrl, prefix: config.redisPrefix };
  return {
    layer: () => new RedisChannelLayer(redis),
    roomState: () => new RedisRoomState(redis),
  };
}

async function bootstrap(): Promise<void> {
  const config = loadConfig();
  const logger = createAppLogger({ logLevels: config.logLevels, format: config.logFormat });
  const app = await NestFactory.create(
    AppModule.forRoot({
      maxFrameBytes: config.maxFrameBytes,
      allowedOrigins: config.allowedOrigins,
      rejectMissingOrigin: config.rejectMissingOrigin,
      rateLimit: config.rateLimit,
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      ...stateFor(config),
    }),
    { logger },
  );
  app.useWebSocketAdapter(new ChatWsAdapter(app));
  closeOnSignals(app, { timeoutMs: config.shutdownTimeoutMs });
  await app.listen(config.port, config.host);
  new Logger('Bootstrap').log(`lobby on ${await app.getUrl()}/`);
}

bootstrap().catch((error: unknown) => {
  new Logger('Bootstrap').fatal(error instanceof Error ? error.message : String(error));
  process.exit(1);
});
