import './node-version.js';
import 'reflect-metadata';
import type { IncomingMessage } from 'node:http';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module.js';
import {
  hostCheck,
  internalOnly,
  isLoopback,
  listenInternal,
  securityHeaders,
  urlOf,
} from './app-http.js';
import { createAppLogger } from './app-logger.js';
import { RedisChannelLayer } from './channel-layer/redis-channel-layer.js';
import { ChatModuleOptions } from './chat/chat.options.js';
import { RedisRoomState } from './rooms/redis-room-state.js';
import { AppConfig, loadConfig } from './config.js';
import { closeOnSignals } from './shutdown.js';
import { errorText } from './error-text.js';

/** The layer (and room store) the environment asks for; the in-memory defaults otherwise. */
function stateFor(config: AppConfig): Pick<ChatModuleOptions, 'layer' | 'roomState'> {
  if (config.channelLayer === 'memory') return {};
  const redis = { hosts: config.redisUrl, prefix: config.redisPrefix };
  // The history bounds the environment sets; unset ones take the store's defaults.
  const { historyLimit, historyBytes, maxHistoryBytes, maxRooms, resendWindowMs, maxResendIds } =
    config.limits;
  const bounds = {
    historyLimit,
    historyBytes,
    maxHistoryBytes,
    maxRooms,
    resendWindowMs,
    maxResendIds,
  };
  return {
    layer: () => new RedisChannelLayer(redis),
    roomState: () => new RedisRoomState({ ...redis, ...bounds }),
  };
}

async function bootstrap(): Promise<void> {
  const config = loadConfig();
  const logger = createAppLogger({ logLevels: config.logLevels, format: config.logFormat });
  const app = await NestFactory.create(
    AppModule.forRoot(
      {
        maxFrameBytes: config.maxFrameBytes,
        allowedOrigins: config.allowedOrigins,
        rejectMissingOrigin: config.rejectMissingOrigin,
        rateLimit: config.rateLimit,
        heartbeatIntervalMs: config.heartbeatIntervalMs,
        ...config.limits,
        ...stateFor(config),
      },
      { roomsApi: config.roomsApi },
    ),
    { logger },
  );
  const log = new Logger('Bootstrap');
  const internal = new WeakSet<IncomingMessage>();
  app.use(securityHeaders, hostCheck(config));
  if (config.internalPort !== undefined) app.use(internalOnly(internal));
  closeOnSignals(app, { timeoutMs: config.shutdownTimeoutMs });
  if (config.internalPort !== undefined) {
    // Routes first, so the internal port never answers before the app can.
    await app.init();
    const server = await listenInternal(app, internal, config.internalPort, config.internalHost);
    const { port } = server.address() as { port: number };
    log.log(`/metrics and /health/ready on ${urlOf(config.internalHost, port)}/ only`);
  } else if (!isLoopback(config.host)) {
    log.warn(
      `/metrics and /health/ready are public: anyone who reaches HOST=${config.host} reads ` +
        'process and channel layer details there. Set INTERNAL_PORT to serve them on an ' +
        'internal port only.',
    );
  }
  await app.listen(config.port, config.host);
  log.log(`lobby on ${await app.getUrl()}/`);
}

bootstrap().catch((error: unknown) => {
  new Logger('Bootstrap').fatal(errorText(error));
  process.exit(1);
});
