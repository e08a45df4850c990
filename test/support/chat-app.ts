import { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { AddressInfo } from 'node:net';
import { AppModule } from '../../src/app.module.js';
import { ChannelLayer, ChatModuleOptions, ChatWsAdapter } from '../../src/index.js';
import { ChatTestClient, ChatTestClientOptions } from '../../src/testing/index.js';

/** A real app on a loopback port, and what tests need to reach it. */
export interface RunningChatApp {
  app: INestApplication;
  layer: ChannelLayer;
  /** `http://127.0.0.1:<port>` */
  httpUrl: string;
  /** `ws://127.0.0.1:<port>` + path (the seed's URL by default). */
  wsUrl(path?: string): string;
  /** Connects a client and waits for its greeting. */
  join(path?: string, options?: ChatTestClientOptions): Promise<ChatTestClient>;
  close(): Promise<void>;
}

/**
 * What tests that are not about the per-address limits run with: every client of a test comes
 * from 127.0.0.1, so the defaults (a handshake budget of 30 at once, 100 sockets) would refuse
 * the crowds tests make. Tests of those limits set them.
 */
export const UNLIMITED_ADDRESS: ChatModuleOptions = {
  handshakeRate: false,
  maxConnectionsPerAddress: 0,
};

/**
 * Starts the runnable AppModule on `listen(0)`, or on `port` (to restart an app where its
 * clients will look for it); close it in afterAll. `options` win over {@link UNLIMITED_ADDRESS}.
 */
export async function startChatApp(
  options: ChatModuleOptions = {},
  port = 0,
): Promise<RunningChatApp> {
  const moduleRef = await Test.createTestingModule({
    imports: [AppModule.forRoot({ ...UNLIMITED_ADDRESS, ...options })],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: ['error', 'warn'] });
  app.useWebSocketAdapter(new ChatWsAdapter(app));
  await app.listen(port, '127.0.0.1');
  const { port: bound } = app.getHttpServer().address() as AddressInfo;
  const clients: ChatTestClient[] = [];
  const wsUrl = (path = '/ws/socket-server/'): string => `ws://127.0.0.1:${bound}${path}`;
  return {
    app,
    layer: app.get(ChannelLayer),
    httpUrl: `http://127.0.0.1:${bound}`,
    wsUrl,
    async join(path, clientOptions) {
      const client = await ChatTestClient.connect(wsUrl(path), clientOptions);
      clients.push(client);
      return client.greeted();
    },
    async close() {
      await Promise.all(clients.map((client) => client.close()));
      await app.close();
    },
  };
}
