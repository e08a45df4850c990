/**
 * Channels' `AllowedHostsOriginValidator`, for the handshake: a page from another origin may not
 * open a socket with the user's cookies (cross-site WebSocket hijacking).
 */

/** Decides whether a handshake's `Origin` may connect; see `allowedOrigins`. */
export type OriginCheck = (origin: string | undefined, host: string | undefined) => boolean;

/** What {@link compileOriginCheck} needs. */
export interface OriginPolicy {
  /** Allowed origins, hosts, `.domain` suffixes or `*`; empty means the request's own host. */
  allowedOrigins: readonly string[];
  /** Refuse a handshake that has no `Origin` header. */
  rejectMissingOrigin: boolean;
}

type Matcher = (origin: URL) => boolean;

/** Compiles the policy once; the returned check runs per handshake. Bad entries throw. */
export function compileOriginCheck(policy: OriginPolicy): OriginCheck {
  const matchers = policy.allowedOrigins.map(compileEntry);
  const anyOrigin = policy.allowedOrigins.includes('*');
  return (origin, host) => {
    if (origin === undefined || origin === '') return !policy.rejectMissingOrigin;
    if (anyOrigin) return true;
    const url = parseOrigin(origin);
    // An opaque origin (`null`: file://, sandboxed frames) matches nothing but `*`.
    if (!url) return false;
    if (matchers.length === 0) return host !== undefined && sameHost(url, host);
    return matchers.some((matches) => matches(url));
  };
}

function compileEntry(entry: string): Matcher {
  if (entry === '*') return () => true;
  const pattern = entry.trim().toLowerCase();
  if (pattern.includes('://')) {
    const allowed = parseOrigin(pattern);
    if (!allowed) throw new TypeError(`allowedOrigins: ${JSON.stringify(entry)} is not an origin`);
    return (origin) => origin.origin === allowed.origin;
  }
  if (pattern.startsWith('.')) {
    const domain = pattern.slice(1);
    return (origin) => origin.hostname === domain || origin.hostname.endsWith(pattern);
  }
  if (pattern === '' || /[/?#@\s]/.test(pattern)) {
    throw new TypeError(`allowedOrigins: ${JSON.stringify(entry)} is not a host`);
  }
  // A host with a port must match it; without one, any port of that host.
  return hasPort(pattern)
    ? (origin) => hostWithPort(origin) === pattern
    : (origin) => origin.hostname === pattern;
}

function parseOrigin(origin: string): URL | undefined {
  try {
    const url = new URL(origin);
    return url.origin === 'null' ? undefined : url;
  } catch {
    return undefined;
  }
}

/** The Origin's host equals the Host header, default ports normalized for the Origin's scheme. */
function sameHost(origin: URL, host: string): boolean {
  try {
    return new URL(`${origin.protocol}//${host}`).host === origin.host;
  } catch {
    return false;
  }
}

function hostWithPort(url: URL): string {
  if (url.port) return url.host;
  const port = url.protocol === 'https:' || url.protocol === 'wss:' ? '443' : '80';
  return `${url.host}:${port}`;
}

function hasPort(host: string): boolean {
  // `[::1]:8000` or `example.com:8000`; a bare IPv6 literal has colons inside brackets only.
  return host.startsWith('[') ? /\]:\d+$/.test(host) : /:\d+$/.test(host);
}
