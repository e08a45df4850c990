import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module';
import { ChatWsAdapter } from './chat/chat-ws.adapter';
import { loadConfig } from './config';

async function bootstrap(): Promise<void> {
  const config = loadConfig();
  const app = await NestFactory.create(AppModule.forRoot({ maxFrameBytes: config.maxFrameBytes }), {
    logger: config.logLevels,
  });
  app.useWebSocketAdapter(new ChatWsAdapter(app));
  app.enableShutdownHooks();
  await app.listen(config.port, config.host);
  new Logger('Bootstrap').log(`lobby on ${await app.getUrl()}/`);
}

bootstrap().catch((error: unknown) => {
  new Logger('Bootstrap').fatal(error instanceof Error ? error.message : String(error));
  process.exit(1);
});
