import { RequestMethod } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants.js';
import type { ApplicationConfig, DiscoveryService } from '@nestjs/core';
import { GATEWAY_METADATA, GATEWAY_OPTIONS, PORT_METADATA } from '@nestjs/websockets/constants.js';
import { type EndpointRoute, routeMatches } from './chat-endpoint.js';
import { withoutTrailingSlash } from './chat.options.js';

/**
 * The host's own parts that would take what a ChatModule serves: a gateway of the host's on the
 * app's port and one of the chat's paths (it would never get a socket: the chat takes those
 * upgrades), and a
 * `GET` route of the host's at the lobby's route (one of the two would never answer). Each is a
 * sentence naming the fix; the module fails the app's init with them rather than serve half.
 */
export function hostConflicts(
  discovery: DiscoveryService,
  route: EndpointRoute,
  lobbyRoute: string | undefined,
  config: ApplicationConfig | undefined,
): string[] {
  const found: string[] = [];
  for (const wrapper of discovery.getProviders()) {
    const type = wrapper.metatype as object | null | undefined;
    if (!type || typeof type !== 'function' || !Reflect.getMetadata(GATEWAY_METADATA, type)) {
      continue;
    }
    const port = Number(Reflect.getMetadata(PORT_METADATA, type) ?? 0);
    const options = (Reflect.getMetadata(GATEWAY_OPTIONS, type) ?? {}) as { path?: unknown };
    if (port !== 0 || typeof options.path !== 'string') continue;
    const path = trimmed(options.path);
    if (routeMatches(route, path)) {
      found.push(
        `the gateway ${type.name} is on the chat's path ${path}; give ChatModule another \`path\``,
      );
    }
  }
  if (lobbyRoute !== undefined) {
    const lobby = trimmed(lobbyRoute || '/');
    const prefix = config?.getGlobalPrefix() ?? '';
    for (const wrapper of discovery.getControllers()) {
      const type = wrapper.metatype as object | null | undefined;
      if (!type || typeof type !== 'function') continue;
      const base = pathsOf(Reflect.getMetadata(PATH_METADATA, type));
      const prototype = (type as { prototype: Record<string, unknown> }).prototype;
      for (const name of Object.getOwnPropertyNames(prototype)) {
        const handler = prototype[name];
        if (typeof handler !== 'function' || name === 'constructor') continue;
        const method = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod | undefined;
        if (method !== RequestMethod.GET && method !== RequestMethod.ALL) continue;
        for (const own of pathsOf(Reflect.getMetadata(PATH_METADATA, handler))) {
          for (const at of base) {
            if (trimmed(`/${prefix}/${at}/${own}`) !== lobby) continue;
            found.push(
              `${type.name}.${name} serves GET ${lobby}, the lobby's route; ` +
                "give the lobby its own: lobby: { route: '/chat' }",
            );
          }
        }
      }
    }
  }
  return found;
}

/** A route's paths as Nest's decorators keep them: one string, several, or none (`/`). */
function pathsOf(value: unknown): string[] {
  if (Array.isArray(value)) return value.map(String);
  return [typeof value === 'string' ? value : '/'];
}

/** `/a//b/` as `/a/b`; `` and `/` as `/`. */
function trimmed(path: string): string {
  const joined = `/${path}`.replace(/\/+/g, '/');
  return withoutTrailingSlash(joined);
}
