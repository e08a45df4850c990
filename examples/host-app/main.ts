import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { HostModule } from './host.module.js';

/** An existing app with the chat added, compiled with the rest (`tsc -p tsconfig.json`); test/embedding.e2e-spec.ts runs its module. */
async function main(): Promise<void> {
  const app = await NestFactory.create(HostModule);
  app.enableShutdownHooks();
  await app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1');
}

void main();
