import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type OnModuleInit, StreamableFile } from '@nestjs/common';
import type { HttpAdapterHost } from '@nestjs/core';
import { PACKAGE_ROOT } from '../package-root.cjs';

/** The route the module's lobby is served at, when it serves one: the gateway checks it is free. */
export const LOBBY_ROUTE = Symbol('chat-lobby-route');

/** Where the lobby page lives, from src/ (tests) and either build of the package alike. */
export const LOBBY_DIR = join(PACKAGE_ROOT, 'client');

/**
 * The lobby's Content-Security-Policy, sent as a header with each of its files: scripts, styles
 * and sockets from this server only, so a message that slipped into the DOM as HTML still could
 * not run; and no framing (`frame-ancestors` works only as a header). `client/index.html` carries
 * the same policy, less `frame-ancestors`, in a `<meta>`.
 */
export const LOBBY_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** The lobby's files, by name, and the type each is served as. */
const FILES = {
  'index.html': 'text/html; charset=utf-8',
  'lobby.js': 'text/javascript; charset=utf-8',
  'lobby.css': 'text/css; charset=utf-8',
  'favicon.svg': 'image/svg+xml',
  'favicon.ico': 'image/x-icon',
} as const;

/** Files sent as bytes; the rest are text. */
const BINARY = new Set<string>(['favicon.ico']);

/**
 * Serves the lobby (`client/`) at its route on the app's HTTP adapter, Express or Fastify alike,
 * each file with the lobby's Content-Security-Policy. Its routes are the adapter's own, as a
 * static-files module's are, so the app's global prefix does not move them; the gateway fails the
 * app's init when one of the host's controllers already serves `GET` at the route. The page links
 * its icon (`favicon.svg`); a lobby at `/` also answers `/favicon.ico`, which browsers ask the
 * site's root for, while under a route of its own that path is the host's.
 */
export class LobbyRoutes implements OnModuleInit {
  /** `route`: where the page is; `chatPath`: the module's WebSocket path, which the page uses. */
  constructor(
    private readonly route: string,
    private readonly chatPath: string,
    private readonly adapterHost?: HttpAdapterHost,
  ) {}

  onModuleInit(): void {
    const http = this.adapterHost?.httpAdapter;
    if (!http) return;
    const base = this.route === '/' ? '' : this.route;
    for (const [name, type] of Object.entries(FILES)) {
      if (name === 'favicon.ico' && base !== '') continue;
      // Read once: a few small files that change only with the package.
      const body = BINARY.has(name) ? readFileSync(join(LOBBY_DIR, name)) : this.text(name, base);
      const paths =
        name === 'index.html'
          ? [base || '/', `${base}/`, `${base}/index.html`]
          : [`${base}/${name}`];
      for (const path of new Set(paths)) {
        http.get(path, (_request: unknown, response: unknown) => {
          http.setHeader(response, 'Content-Type', type);
          http.setHeader(response, 'Content-Security-Policy', LOBBY_CSP);
          http.setHeader(response, 'Cache-Control', 'no-cache');
          // Bytes as a StreamableFile: both adapters send it as it is, not as JSON.
          http.reply(
            response,
            typeof body === 'string' ? body : new StreamableFile(body, { type }),
            200,
          );
        });
      }
    }
  }

  /** A text file of the lobby's; the page with its URLs made this module's. */
  private text(name: string, base: string): string {
    const body = readFileSync(join(LOBBY_DIR, name), 'utf8');
    if (name !== 'index.html') return body;
    // Assets by absolute URL, so the page works at `/chat` and `/chat/` alike, and the socket on
    // this module's path (URL paths: of HTML's specials they may hold only `&`).
    const path = this.chatPath.replace(/&/g, '&amp;');
    const assets = base.replace(/&/g, '&amp;');
    return body
      .replace(/(href|src)="(lobby\.[a-z]+|favicon\.svg)"/g, `$1="${assets}/$2"`)
      .replace(
        /<meta name="chat-path" content="[^"]*" \/>/,
        `<meta name="chat-path" content="${path}" />`,
      );
  }
}
