import 'reflect-metadata';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { INestApplication, Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import helmet from 'helmet';
import { AppModule } from './app.module';
import { ChatWsAdapter } from './chat/chat-ws.adapter';
import { createAppLogger } from './app-logger';
import { RedisChannelLayer } from './channel-layer/redis-channel-layer';
import { ChatModuleOptions } from './chat/chat.options';
import { compileHostCheck } from './chat/host-check';
import { RedisRoomState } from './rooms/redis-room-state';
import { AppConfig, loadConfig } from './config';
import { closeOnSignals } from './shutdown';

/** Served only on INTERNAL_PORT when it is set: process and layer details for operators. */
const INTERNAL_ONLY = new Set(['/metrics', '/health/ready']);
/** What INTERNAL_PORT serves; `/health` on both ports, so either can be probed for liveness. */
const INTERNAL_PATHS = new Set([...INTERNAL_ONLY, '/health']);

type Middleware = (request: IncomingMessage, response: ServerResponse, next: () => void) => void;

/** The layer (and room store) the environment asks for; the in-memory defaults otherwise. */
function stateFor(config: AppConfig): Pick<ChatModuleOptions, 'layer' | 'roomState'> {
  if (config.channelLayer === 'memory') return {};
  const redis = { hosts: config.redisUrl, prefix: config.redisPrefix };
  return {
    layer: () => new RedisChannelLayer(redis),
    roomState: () => new RedisRoomState(redis),
  };
}

/**
 * helmet's headers, a CSP for what is not the lobby (JSON, health, metrics: nothing to load, no
 * framing; the lobby's files carry their own from ChatModule). No HSTS: that is for whoever
 * terminates TLS, on plain HTTP browsers ignore it.
 */
const securityHeaders = helmet({
  contentSecurityPolicy: {
    useDefaults: false,
    directives: {
      defaultSrc: ["'none'"],
      baseUri: ["'none'"],
      formAction: ["'none'"],
      frameAncestors: ["'none'"],
    },
  },
  strictTransportSecurity: false,
  xFrameOptions: { action: 'deny' },
  referrerPolicy: { policy: 'no-referrer' },
});

/** 400 for a `Host` this server is not (DNS rebinding); see {@link compileHostCheck}. */
function hostCheck(config: AppConfig): Middleware {
  const allowed = compileHostCheck({ allowedOrigins: config.allowedOrigins });
  return (request, response, next) => {
    if (allowed(request.headers.host, request.socket.localAddress)) return next();
    response.writeHead(400, { 'Content-Type': 'text/plain; charset=utf-8' });
    response.end('Bad Request: unknown Host\n');
  };
}

/** A path as Express routes it: decoded, case-insensitive, trailing slashes ignored. */
function routePath(url = '/'): string {
  const path = url.split('?', 1)[0].replace(/\/+$/, '').toLowerCase() || '/';
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

function notFound(response: ServerResponse, url = '/', method = 'GET'): void {
  response.writeHead(404, { 'Content-Type': 'application/json; charset=utf-8' });
  response.end(
    JSON.stringify({ message: `Cannot ${method} ${url}`, error: 'Not Found', statusCode: 404 }),
  );
}

/** On the public port, with INTERNAL_PORT set: 404 for {@link INTERNAL_ONLY}. */
function internalOnly(internal: WeakSet<IncomingMessage>): Middleware {
  return (request, response, next) => {
    if (internal.has(request) || !INTERNAL_ONLY.has(routePath(request.url))) return next();
    notFound(response, request.url, request.method);
  };
}

/**
 * INTERNAL_PORT: a plain HTTP server that hands {@link INTERNAL_PATHS} to the app's own Express
 * instance (one app, one set of metrics), marked in `internal`, and 404s everything else.
 */
async function listenInternal(
  app: INestApplication,
  internal: WeakSet<IncomingMessage>,
  port: number,
  host: string,
): Promise<Server> {
  const express = app.getHttpAdapter().getInstance() as Middleware;
  const server = createServer((request, response) => {
    if (!INTERNAL_PATHS.has(routePath(request.url))) {
      return notFound(response, request.url, request.method);
    }
    internal.add(request);
    express(request, response, () => notFound(response, request.url, request.method));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject).listen(port, host, () => resolve());
  });
  // Closed with the app: shutdown ends with the public server's close.
  (app.getHttpServer() as Server).once('close', () => {
    server.close();
    server.closeAllConnections();
  });
  return server;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

function urlOf(host: string, port: number): string {
  return `http://${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
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
  app.useWebSocketAdapter(new ChatWsAdapter(app));
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
  new Logger('Bootstrap').fatal(error instanceof Error ? error.message : String(error));
  process.exit(1);
});
