import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const repo = join(import.meta.dirname, '..');
const tsc = join(repo, 'node_modules', 'typescript', 'bin', 'tsc');

/** A CommonJS TypeScript host, compiled by tsc against the installed package's types. */
const HOST_TS = `
import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  ChannelFull, ChannelLayer, ChatModule, ChatRooms, ChatWsAdapter, InMemoryChannelLayer,
  RedisChannelLayer, type ChatFrame, type ServerFrame,
} from 'nest-channels-chat';
import { ChatTestClient } from 'nest-channels-chat/testing';

@Module({ imports: [ChatModule.forRoot({ layer: InMemoryChannelLayer, lobby: true })] })
class HostModule {}

async function main(): Promise<void> {
  const app = await NestFactory.create(HostModule, { logger: false });
  app.useWebSocketAdapter(new ChatWsAdapter(app));
  await app.listen(0, '127.0.0.1');
  const { port } = app.getHttpServer().address() as { port: number };
  const client = await (await ChatTestClient.connect(\`ws://127.0.0.1:\${port}/ws/socket-server/\`)).greeted();
  await app.get(ChatRooms).send('from the host');
  const frame: ServerFrame = await client.nextOfType('chat');
  const page = await (await fetch(\`http://127.0.0.1:\${port}/\`)).text();
  const chat = frame as ChatFrame;
  const checks = [
    chat.message === 'from the host',
    app.get(ChannelLayer) instanceof InMemoryChannelLayer,
    new ChannelFull('c') instanceof Error,
    typeof RedisChannelLayer === 'function',
    page.includes('id="messages"'),
  ];
  await client.close();
  await app.close();
  console.log(checks.every(Boolean) ? 'CJS OK' : 'CJS FAILED ' + JSON.stringify(checks));
}
void main();
`;

/** An ES module host: the CommonJS package must load from ESM, named exports included. */
const HOST_MJS = `
import 'reflect-metadata';
import { ChatModule, ChatWsAdapter, InMemoryChannelLayer, ChannelLayer } from 'nest-channels-chat';
import { ChatTestClient } from 'nest-channels-chat/testing';
const layer = new InMemoryChannelLayer();
const ok = [ChatModule, ChatWsAdapter, ChatTestClient].every((x) => typeof x === 'function') &&
  layer instanceof ChannelLayer && typeof ChatModule.forRootAsync === 'function';
await layer.close();
console.log(ok ? 'ESM OK' : 'ESM FAILED');
`;

describe('The published package', () => {
  let work: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'chat-package-'));
  });

  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('installs from its tarball, compiles with tsc, and runs in CommonJS and ESM hosts', async () => {
    await run('npm', ['pack', '--pack-destination', work], { cwd: repo });
    const tarball = (await readdir(work)).find((name) => name.endsWith('.tgz'));
    expect(tarball).toBeDefined();

    const app = join(work, 'app');
    await run('mkdir', ['-p', app]);
    await writeFile(
      join(app, 'package.json'),
      JSON.stringify({
        name: 'throwaway-host',
        private: true,
        dependencies: { 'nest-channels-chat': `file:${join(work, tarball as string)}` },
      }),
    );
    await writeFile(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'commonjs',
          target: 'ES2022',
          lib: ['ES2022', 'DOM'],
          strict: true,
          experimentalDecorators: true,
          emitDecoratorMetadata: true,
          skipLibCheck: true,
          types: [],
          outDir: 'out',
        },
        files: ['host.ts'],
      }),
    );
    await writeFile(join(app, 'host.ts'), HOST_TS);
    await writeFile(join(app, 'host.mjs'), HOST_MJS);
    // Peer dependencies (Nest) are installed by npm itself, as in a real host.
    await run(
      'npm',
      ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts'],
      {
        cwd: app,
      },
    );

    await run('node', [tsc, '-p', app]);
    const cjs = await run('node', [join(app, 'out', 'host.js')], { cwd: app, timeout: 20_000 });
    expect(cjs.stdout.trim()).toBe('CJS OK');
    const esm = await run('node', [join(app, 'host.mjs')], { cwd: app, timeout: 20_000 });
    expect(esm.stdout.trim()).toBe('ESM OK');
  }, 180_000);
});
