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
  const allowed = parseAllowedEntry(entry);
  switch (allowed.kind) {
    case 'any':
      return () => true;
    case 'origin':
      return (origin) => origin.origin === allowed.url.origin;
    case 'domain':
      return (origin) => inDomain(origin.hostname, allowed.domain);
    case 'host':
      // A host with a port must match it; without one, any port of that host.
      return allowed.withPort
        ? (origin) => hostWithPort(origin) === allowed.host
        : (origin) => origin.hostname === allowed.host;
  }
}

/** One `allowedOrigins` entry, parsed once for the Origin check and the Host check alike. */
export type AllowedEntry =
  | { kind: 'any' }
  | { kind: 'origin'; url: URL }
  /** `.example.com`: `domain` is `example.com`, which matches itself and its subdomains. */
  | { kind: 'domain'; domain: string }
  /** `example.com` or `example.com:8443`, lowercased; `hostname` is without the port. */
  | { kind: 'host'; host: string; hostname: string; withPort: boolean };

/** Parses an `allowedOrigins` entry; throws a TypeError naming a malformed one. */
export function parseAllowedEntry(entry: string): AllowedEntry {
  if (entry === '*') return { kind: 'any' };
  const pattern = entry.trim().toLowerCase();
  if (pattern.includes('://')) {
    const url = parseOrigin(pattern);
    if (!url) throw new TypeError(`allowedOrigins: ${JSON.stringify(entry)} is not an origin`);
    return { kind: 'origin', url };
  }
  if (pattern.startsWith('.')) return { kind: 'domain', domain: pattern.slice(1) };
  const parsed = pattern === '' || /[/?#@\s]/.test(pattern) ? undefined : parseHost(pattern);
  if (!parsed) throw new TypeError(`allowedOrigins: ${JSON.stringify(entry)} is not a host`);
  return { kind: 'host', host: pattern, hostname: parsed.hostname, withPort: hasPort(pattern) };
}

/** `hostname` is `domain` or one of its subdomains. */
export function inDomain(hostname: string, domain: string): boolean {
  return hostname === domain || hostname.endsWith(`.${domain}`);
}

/**
 * A `Host` header as a URL (`hostname` lowercased, IPv6 in brackets, IPv4 in dotted form), with
 * default ports normalized for `protocol`; undefined when it is not a plain `host[:port]`.
 */
export function parseHost(host: string, protocol = 'http:'): URL | undefined {
  // No userinfo, path or whitespace: `new URL` would read `evil@127.0.0.1` as 127.0.0.1.
  if (host === '' || /[/?#@\\\s]/.test(host)) return undefined;
  try {
    return new URL(`${protocol}//${host}`);
  } catch {
    return undefined;
  }
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
  return parseHost(host, origin.protocol)?.host === origin.host;
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
