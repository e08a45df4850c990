/**
 * What a Nest user writes instead of this library (issue 20): an idiomatic Nest chat gateway on
 * `@nestjs/platform-socket.io` (IoAdapter), with the seed's semantics. A client joins room `test`
 * (or `?room=NAME`, as the baseline takes it) and gets a `connection_established` event; its
 * `message` event `{ message }` goes to everyone in its room as a `chat` event `{ message }`, by
 * `server.to(room).emit(...)`. WebSocket transport only, so it compares with the raw-ws servers.
 *
 * With REDIS_URL set, the adapter is `@socket.io/redis-adapter` on ioredis clients (Nest's
 * documented RedisIoAdapter), so several processes share the rooms.
 *
 * Plain JS (no build step): the Nest decorators are applied as the functions they are.
 * Usage: `PORT=8000 [HOST=127.0.0.1] [REDIS_URL=redis://…] node bench/socketio-server/main.mjs`.
 */
import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { IoAdapter } from '@nestjs/platform-socket.io';
import { SubscribeMessage, WebSocketGateway, WebSocketServer } from '@nestjs/websockets';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';

class ChatGateway {
  /** @type {import('socket.io').Server} */
  server;

  /** @param {import('socket.io').Socket} client */
  handleConnection(client) {
    const param = client.handshake.query.room;
    const room = typeof param === 'string' ? param : 'test';
    client.data.room = room;
    client.join(room);
    const greeting = { message: 'You are connected!' };
    client.emit(
      'connection_established',
      typeof param === 'string' ? { ...greeting, room } : greeting,
    );
  }

  /** @param {import('socket.io').Socket} client @param {{ message?: unknown }} data */
  handleMessage(client, data) {
    this.server.to(client.data.room).emit('chat', { message: data?.message });
  }
}
WebSocketGateway({ transports: ['websocket'] })(ChatGateway);
WebSocketServer()(ChatGateway.prototype, 'server');
SubscribeMessage('message')(
  ChatGateway.prototype,
  'handleMessage',
  Object.getOwnPropertyDescriptor(ChatGateway.prototype, 'handleMessage'),
);

class AppModule {}
Module({ providers: [ChatGateway] })(AppModule);

/** Nest's documented Redis adapter for Socket.IO, on ioredis. */
class RedisIoAdapter extends IoAdapter {
  /** @type {ReturnType<typeof createAdapter> | undefined} */
  adapterConstructor;

  /** @param {string} url */
  async connectToRedis(url) {
    const pubClient = new Redis(url);
    const subClient = pubClient.duplicate();
    await Promise.all(
      [pubClient, subClient].map(
        (c) => new Promise((resolve, reject) => c.once('ready', resolve).once('error', reject)),
      ),
    );
    this.adapterConstructor = createAdapter(pubClient, subClient);
  }

  /** @param {number} port @param {any} [options] */
  createIOServer(port, options) {
    const server = super.createIOServer(port, options);
    if (this.adapterConstructor) server.adapter(this.adapterConstructor);
    return server;
  }
}

const app = await NestFactory.create(AppModule, { logger: ['error', 'warn'] });
if (process.env.REDIS_URL) {
  const adapter = new RedisIoAdapter(app);
  await adapter.connectToRedis(process.env.REDIS_URL);
  app.useWebSocketAdapter(adapter);
} else {
  app.useWebSocketAdapter(new IoAdapter(app));
}
await app.listen(Number(process.env.PORT ?? 8000), process.env.HOST ?? '127.0.0.1');

// Exit cleanly on SIGTERM (so `node --cpu-prof` writes its profile), promptly even if sockets hold on.
process.on('SIGTERM', () => {
  setTimeout(() => process.exit(0), 2000).unref();
  app.close().then(() => process.exit(0));
});
