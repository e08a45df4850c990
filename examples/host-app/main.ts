import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { HostModule } from './host.module.js';

/** `npx ts-node examples/host-app/main.ts`, or compiled: an existing app with the chat added. */
async function main(): Promise<void> {
  const app = await NestFactory.create(HostModule);
  app.enableShutdownHooks();
  await app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1');
}

void main();
