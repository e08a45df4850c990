import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { INestApplication } from '@nestjs/common';
import helmet from 'helmet';
import { compileHostCheck } from './chat/host-check.js';
export { isLoopback } from './chat/host-check.js';
import { AppConfig } from './config.js';

/**
 * The runnable app's HTTP side: helmet's headers, the Host check, and the internal port for
 * `/metrics` and readiness. Embedding apps keep their own; the chat's handshake checks its Host
 * itself.
 */

/** Served only on INTERNAL_PORT when it is set: process and layer details for operators. */
const INTERNAL_ONLY = new Set(['/metrics', '/health/ready']);
/** What INTERNAL_PORT serves; `/health` on both ports, so either can be probed for liveness. */
const INTERNAL_PATHS = new Set([...INTERNAL_ONLY, '/health']);

export type Middleware = (
  request: IncomingMessage,
  response: ServerResponse,
  next: () => void,
) => void;

/**
 * helmet's headers, a CSP for what is not the lobby (JSON, health, metrics: nothing to load, no
 * framing; the lobby's files carry their own from ChatModule). No HSTS: that is for whoever
 * terminates TLS, on plain HTTP browsers ignore it.
 */
export const securityHeaders = helmet({
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
export function hostCheck(config: AppConfig): Middleware {
  const allowed = compileHostCheck({ allowedOrigins: config.allowedOrigins });
  return (request, response, next) => {
    if (allowed(request.headers.host, request.socket)) return next();
    response.writeHead(400, { 'Content-Type': 'text/plain; charset=utf-8' });
    response.end('Bad Request: unknown Host\n');
  };
}

/** A path as Express routes it: decoded, case-insensitive, trailing slashes ignored. */
function routePath(url = '/'): string {
  // Express routes on the path alone: a query or a fragment (which a raw client may send) is not
  // part of it.
  const path = url.split(/[?#]/, 1)[0].replace(/\/+$/, '').toLowerCase() || '/';
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
export function internalOnly(internal: WeakSet<IncomingMessage>): Middleware {
  return (request, response, next) => {
    if (internal.has(request) || !INTERNAL_ONLY.has(routePath(request.url))) return next();
    notFound(response, request.url, request.method);
  };
}

/**
 * INTERNAL_PORT: a plain HTTP server that hands {@link INTERNAL_PATHS} to the app's own Express
 * instance (one app, one set of metrics), marked in `internal`, and 404s everything else.
 */
export async function listenInternal(
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

export function urlOf(host: string, port: number): string {
  return `http://${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
}
