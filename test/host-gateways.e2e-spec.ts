import {
  ArgumentsHost,
  CallHandler,
  CanActivate,
  Catch,
  Controller,
  ExecutionContext,
  Get,
  INestApplication,
  Injectable,
  Module,
  NestInterceptor,
  PipeTransform,
  UseFilters,
  UseGuards,
  UseInterceptors,
  UsePipes,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { IoAdapter } from '@nestjs/platform-socket.io';
import { WsAdapter } from '@nestjs/platform-ws';
import { Test } from '@nestjs/testing';
import {
  BaseWsExceptionFilter,
  MessageBody,
  SubscribeMessage,
  WebSocketGateway,
  WsException,
} from '@nestjs/websockets';
import type { AddressInfo } from 'node:net';
import { Observable, map } from 'rxjs';
import { io } from 'socket.io-client';
import { WebSocket } from 'ws';
import { ChatModule, ChatWsAdapter, LOBBY_CSP } from '../src/index.js';
import { ChatTestClient, HandshakeRefused } from '../src/testing/index.js';
import { withinMs } from './support/app-process.js';
import { startChatApp } from './support/chat-app.js';

/**
 * The host keeps its own WebSocket setup: with Nest's `WsAdapter` or Socket.IO as the app's
 * adapter, its gateways get their frames through their guards, pipes, interceptors and filters,
 * on the chat's port, as without the chat; and a Fastify host chats and serves the lobby.
 */

/** What ran for the host's gateway, in order. */
const ran: string[] = [];

@Injectable()
class NotForbidden implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    ran.push('guard');
    if (context.switchToWs().getData() === 'forbidden') throw new WsException('forbidden');
    return true;
  }
}

@Injectable()
class Upper implements PipeTransform {
  transform(value: unknown): string {
    ran.push('pipe');
    return String(value).toUpperCase();
  }
}

@Injectable()
class Stamp implements NestInterceptor {
  intercept(_context: ExecutionContext, next: CallHandler): Observable<unknown> {
    ran.push('interceptor');
    return next
      .handle()
      .pipe(
        map((reply: { event: string; data: string }) => ({ ...reply, data: `${reply.data}!` })),
      );
  }
}

type IoClient = { emit(event: string, data: unknown): void };

/** Tells the client what was refused: ws clients by a frame, Socket.IO ones by an event. */
@Catch(WsException)
class Refusals extends BaseWsExceptionFilter {
  override catch(exception: WsException, host: ArgumentsHost): void {
    ran.push('filter');
    // A Socket.IO socket has its handshake; a ws one does not (and may be another copy of ws).
    const client = host.switchToWs().getClient<object>();
    const refusal = { event: 'refused', data: exception.getError() };
    if ('handshake' in client) (client as unknown as IoClient).emit('refused', refusal.data);
    else (client as WebSocket).send(JSON.stringify(refusal));
  }
}

function hostGateway(options: { path?: string }) {
  @WebSocketGateway(options)
  @UseGuards(NotForbidden)
  @UseInterceptors(Stamp)
  @UseFilters(new Refusals())
  class HostGateway {
    @SubscribeMessage('events')
    @UsePipes(Upper)
    onEvents(@MessageBody() data: string) {
      return { event: 'events', data };
    }
  }
  return HostGateway;
}

async function start(imports: unknown[], providers: unknown[], adapter: 'ws' | 'io') {
  @Module({ imports: imports as [], providers: providers as [] })
  class HostModule {}
  const moduleRef = await Test.createTestingModule({ imports: [HostModule] }).compile();
  const app = moduleRef.createNestApplication({ logger: ['error'] });
  app.useWebSocketAdapter(adapter === 'ws' ? new WsAdapter(app) : new IoAdapter(app));
  await app.listen(0, '127.0.0.1');
  return { app, port: (app.getHttpServer().address() as AddressInfo).port };
}

/** A chat member on `port` sends and gets its message back: the chat works beside the host. */
async function chats(port: number, text: string): Promise<void> {
  const chat = await ChatTestClient.connect(`ws://127.0.0.1:${port}/ws/socket-server/`);
  await chat.greeted();
  chat.send({ message: text });
  await expect(chat.nextOfType('chat')).resolves.toMatchObject({ message: text });
  await chat.close();
}

function nextText(socket: WebSocket): Promise<string> {
  return new Promise((resolve) => socket.once('message', (data: Buffer) => resolve(String(data))));
}

describe("A host's gateway on Nest's WsAdapter, beside the chat on one port", () => {
  let app: INestApplication;
  let port: number;

  beforeAll(async () => {
    ({ app, port } = await start([ChatModule.forRoot()], [hostGateway({ path: '/host' })], 'ws'));
  });

  afterAll(async () => {
    await app.close();
  });

  it("gets its @SubscribeMessage('events') frames through its guard, pipe, interceptor and filter", async () => {
    ran.length = 0;
    const socket = new WebSocket(`ws://127.0.0.1:${port}/host`);
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    let reply = nextText(socket);
    socket.send(JSON.stringify({ event: 'events', data: 'hi' }));
    expect(JSON.parse(await reply)).toEqual({ event: 'events', data: 'HI!' });
    expect(ran).toEqual(['guard', 'interceptor', 'pipe']);

    ran.length = 0;
    reply = nextText(socket);
    socket.send(JSON.stringify({ event: 'events', data: 'forbidden' }));
    expect(JSON.parse(await reply)).toEqual({ event: 'refused', data: 'forbidden' });
    expect(ran).toEqual(['guard', 'filter']);

    await chats(port, 'beside the host gateway');
    // The host's socket was never touched by the chat's traffic.
    expect(socket.readyState).toBe(WebSocket.OPEN);
    socket.close();
  });
});

describe("A host's gateway on Socket.IO, beside the chat on one port", () => {
  let app: INestApplication;
  let port: number;

  beforeAll(async () => {
    ({ app, port } = await start([ChatModule.forRoot()], [hostGateway({})], 'io'));
  });

  afterAll(async () => {
    await app.close();
  });

  it('answers socket.io-client through its guard, pipe, interceptor and filter', async () => {
    ran.length = 0;
    const client = io(`http://127.0.0.1:${port}`, { transports: ['websocket'], forceNew: true });
    await new Promise<void>((resolve, reject) =>
      client.once('connect', () => resolve()).once('connect_error', reject),
    );
    const reply = new Promise((resolve) => client.once('events', resolve));
    client.emit('events', 'hi');
    await expect(reply).resolves.toBe('HI!');
    expect(ran).toEqual(['guard', 'interceptor', 'pipe']);

    ran.length = 0;
    const refused = new Promise((resolve) => client.once('refused', resolve));
    client.emit('events', 'forbidden');
    await expect(refused).resolves.toBe('forbidden');
    expect(ran).toEqual(['guard', 'filter']);

    await chats(port, 'beside socket.io');
    expect(client.connected).toBe(true);
    client.disconnect();
  });

  it('keeps polling, the transport Socket.IO falls back to, on the same HTTP server', async () => {
    const client = io(`http://127.0.0.1:${port}`, { transports: ['polling'], forceNew: true });
    const reply = new Promise((resolve) => client.once('events', resolve));
    client.emit('events', 'polled');
    await expect(reply).resolves.toBe('POLLED!');
    client.disconnect();
  });
});

@Controller()
class HostPages {
  @Get('about')
  about(): string {
    return 'the host';
  }
}

describe('A Fastify host', () => {
  it('chats, serves the lobby with its policy, and keeps its own routes', async () => {
    @Module({
      imports: [ChatModule.forRoot({ lobby: { route: '/chat' } })],
      controllers: [HostPages],
    })
    class FastifyHost {}
    const app = await NestFactory.create<NestFastifyApplication>(
      FastifyHost,
      new FastifyAdapter(),
      { logger: ['error'] },
    );
    await app.listen(0, '127.0.0.1');
    const { port } = app.getHttpServer().address() as AddressInfo;
    try {
      await chats(port, 'on fastify');
      for (const path of ['/chat', '/chat/']) {
        const lobby = await fetch(`http://127.0.0.1:${port}${path}`);
        expect(lobby.status).toBe(200);
        expect(lobby.headers.get('content-security-policy')).toBe(LOBBY_CSP);
        const page = await lobby.text();
        expect(page).toContain('<script src="/chat/lobby.js" defer></script>');
        expect(page).toContain('<meta name="chat-path" content="/ws/socket-server" />');
      }
      const script = await fetch(`http://127.0.0.1:${port}/chat/lobby.js`);
      expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
      expect(await (await fetch(`http://127.0.0.1:${port}/about`)).text()).toBe('the host');
    } finally {
      await app.close();
    }
  });
});

describe('Configuration mistakes fail the app’s init with one message naming the fix', () => {
  async function initError(
    imports: unknown[],
    extra: { controllers?: unknown[]; providers?: unknown[] } = {},
  ) {
    @Module({
      imports: imports as [],
      controllers: (extra.controllers ?? []) as [],
      providers: (extra.providers ?? []) as [],
    })
    class HostModule {}
    const moduleRef = await Test.createTestingModule({ imports: [HostModule] }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    app.useWebSocketAdapter(new WsAdapter(app));
    try {
      await app.init();
      return undefined;
    } catch (error) {
      return (error as Error).message;
    } finally {
      await app.close();
    }
  }

  it('two ChatModules on one path', async () => {
    await expect(
      initError([
        ChatModule.forRoot({ path: '/chat' }),
        ChatModule.forRoot({ path: '/chat/', group: 'b' }),
      ]),
    ).resolves.toBe('ChatModule: two ChatModules on the path /chat; give each its own `path`');
  });

  it('two ChatModules on one room path (the default one, say)', async () => {
    await expect(
      initError([ChatModule.forRoot({ path: '/a' }), ChatModule.forRoot({ path: '/b' })]),
    ).resolves.toBe(
      'ChatModule: two ChatModules on the room path /ws/chat; give each its own `roomPath`',
    );
  });

  it("the host's gateway on the chat's path", async () => {
    await expect(
      initError([ChatModule.forRoot()], {
        providers: [hostGateway({ path: '/ws/socket-server' })],
      }),
    ).resolves.toBe(
      "ChatModule: the gateway HostGateway is on the chat's path /ws/socket-server; give ChatModule another `path`",
    );
  });

  it("a lobby at a route the host's controller already serves", async () => {
    @Controller()
    class Home {
      @Get()
      hello(): string {
        return 'Hello World!';
      }
    }
    await expect(
      initError([ChatModule.forRoot({ lobby: true })], { controllers: [Home] }),
    ).resolves.toBe(
      "ChatModule: Home.hello serves GET /, the lobby's route; give the lobby its own: lobby: { route: '/chat' }",
    );
  });

  it('a path that is not a path, when the module is built', () => {
    expect(() => ChatModule.forRoot({ path: 'ws/chat?x' })).toThrow(
      `ChatModule: path must be a URL path such as '/ws/socket-server', got "ws/chat?x"`,
    );
    expect(() => ChatModule.forRoot({ lobby: { route: 'chat' } })).toThrow(
      `ChatModule: lobby.route must be a URL path such as '/chat', got "chat"`,
    );
  });

  it('none of these for two modules on their own paths, next to the host’s gateway', async () => {
    await expect(
      initError(
        [
          ChatModule.forRoot({ path: '/a', roomPath: '/rooms-a' }),
          ChatModule.forRoot({ path: '/b', roomPath: '/rooms-b' }),
        ],
        {
          providers: [hostGateway({ path: '/host' })],
        },
      ),
    ).resolves.toBeUndefined();
  });
});

describe('An app upgrading from ChatWsAdapter', () => {
  it('still chats with the line left in, and is told at start what to delete', async () => {
    const warnings: string[] = [];
    const logger = {
      log: () => undefined,
      error: () => undefined,
      warn: (message: unknown) => void warnings.push(String(message)),
    };
    const moduleRef = await Test.createTestingModule({
      imports: [ChatModule.forRoot()],
      providers: [hostGateway({ path: '/host' })],
    }).compile();
    const app = moduleRef.createNestApplication({ logger });
    app.useWebSocketAdapter(new ChatWsAdapter(app));
    await app.listen(0, '127.0.0.1');
    try {
      const { port } = app.getHttpServer().address() as AddressInfo;
      await chats(port, 'after the upgrade');
      // The host's gateway is now served as Nest serves it: its events reach its handler.
      const socket = new WebSocket(`ws://127.0.0.1:${port}/host`);
      await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
      const reply = nextText(socket);
      socket.send(JSON.stringify({ event: 'events', data: 'still here' }));
      expect(JSON.parse(await reply)).toEqual({ event: 'events', data: 'STILL HERE!' });
      socket.close();
      expect(warnings).toEqual([
        expect.stringContaining('Delete app.useWebSocketAdapter(new ChatWsAdapter(app))'),
      ]);
    } finally {
      await app.close();
    }
  });
});

describe("The chat's endpoint on the app's HTTP server", () => {
  it('refuses, 503, a handshake still being authenticated when shutdown starts, and shuts down', async () => {
    let started = (): void => undefined;
    const authenticating = new Promise<void>((resolve) => (started = resolve));
    const chat = await startChatApp({
      authenticate: async () => {
        started();
        await new Promise((resolve) => setTimeout(resolve, 300));
        return { id: 'late' };
      },
    });
    const late = ChatTestClient.connect(chat.wsUrl(), { timeoutMs: 3000 });
    await authenticating;
    const closing = chat.app.close();
    await expect(late).rejects.toEqual(new HandshakeRefused(503));
    await expect(withinMs(closing, 3000, 'app.close()')).resolves.toBeUndefined();
  });

  it('keeps the TCP guard off chat sockets once they are open', async () => {
    const chat = await startChatApp({ handshakeTimeoutMs: 300 });
    try {
      const client = await chat.join();
      await new Promise((resolve) => setTimeout(resolve, 1000));
      expect(client.socket.readyState).toBe(WebSocket.OPEN);
      const metrics = await (await fetch(`${chat.httpUrl}/metrics`)).text();
      expect(metrics).not.toMatch(
        /chat_connections_closed_by_server_total\{reason="handshake_timeout"\} [1-9]/,
      );
    } finally {
      await chat.close();
    }
  });
});
