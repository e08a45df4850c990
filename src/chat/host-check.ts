/**
 * Django's `ALLOWED_HOSTS`, against DNS rebinding: a page on `evil.example` whose name the
 * attacker re-points at this server (127.0.0.1, a LAN address) is same-origin with it in the
 * browser, so the Origin check passes; but the browser still sends `Host: evil.example`, which
 * names nothing this server is.
 */
import { hostname as osHostname, networkInterfaces } from 'node:os';
import { AllowedEntry, inDomain, parseAllowedEntry, parseHost } from './origin-check.js';

/**
 * Decides whether a request's `Host` header names this server. `local` is the address the
 * connection came in on, or the socket to read it from (`request.socket`): read only when the
 * `Host` is none of the names allowed on every address, since it costs a system call.
 */
export type HostCheck = (
  hostHeader: string | undefined,
  local: string | { readonly localAddress?: string } | undefined,
) => boolean;

/** Hosts remembered as allowed on every address; past it the memory starts again. */
const KNOWN_HOSTS = 256;

/** What {@link compileHostCheck} needs. */
export interface HostPolicy {
  /**
   * The `allowedOrigins` of the Origin check: the hosts of its entries are allowed too (an
   * origin's host, a host with or without port, a `.domain` and its subdomains); `*` allows any.
   * @default [] (only the names below)
   */
  allowedOrigins?: readonly string[];
  /**
   * Names of this machine that are allowed on any address.
   * @default [os.hostname()]
   */
  machineNames?: readonly string[];
  /**
   * Addresses of this machine that are allowed on any address (a wildcard bind reached on one
   * interface by another's address).
   * @default every address of `os.networkInterfaces()`, read once when compiled
   */
  machineAddresses?: readonly string[];
}

/**
 * Compiles the policy once; the returned check runs per request. Allowed, on any port:
 * - the connection's local address (IPv6 in brackets, `::ffff:`-mapped IPv4 as IPv4);
 * - when that address is loopback, `localhost` and `*.localhost` (RFC 6761: they never leave
 *   the machine);
 * - `machineNames` and `machineAddresses`;
 * - the hosts of `allowedOrigins` entries; `*` allows any Host.
 *
 * These are names and addresses an attacker's DNS cannot point at the server. A request without
 * a `Host` (HTTP/1.0) is allowed: a browser always sends one. A malformed `Host` is refused.
 * Bad `allowedOrigins` entries throw, as in `compileOriginCheck`.
 */
export function compileHostCheck(policy: HostPolicy = {}): HostCheck {
  const entries = (policy.allowedOrigins ?? []).map(parseAllowedEntry);
  if (entries.some((entry) => entry.kind === 'any')) return () => true;
  const names = new Set<string>();
  const domains: string[] = [];
  for (const entry of entries) addEntry(entry, names, domains);
  for (const name of policy.machineNames ?? [osHostname()]) {
    const parsed = parseHost(name.toLowerCase());
    if (parsed) names.add(parsed.hostname);
  }
  for (const address of policy.machineAddresses ?? interfaceAddresses()) {
    const hostname = addressHostname(address);
    if (hostname) names.add(hostname);
  }
  // Clients of one server send the same few Hosts: parse each once.
  const known = new Set<string>();
  return (hostHeader, local) => {
    if (hostHeader === undefined || hostHeader === '' || known.has(hostHeader)) return true;
    const hostname = parseHost(hostHeader)?.hostname;
    if (hostname === undefined) return false;
    if (names.has(hostname) || domains.some((domain) => inDomain(hostname, domain))) {
      if (known.size >= KNOWN_HOSTS) known.clear();
      known.add(hostHeader);
      return true;
    }
    const localAddress = typeof local === 'object' ? local.localAddress : local;
    if (localAddress === undefined) return false;
    const own = addressHostname(localAddress);
    if (hostname === own) return true;
    return own !== undefined && isLoopback(own) && inDomain(hostname, 'localhost');
  };
}

function addEntry(entry: AllowedEntry, names: Set<string>, domains: string[]): void {
  // The Host's port is the server's, which a proxy may change: only the name is compared.
  if (entry.kind === 'origin') names.add(entry.url.hostname);
  else if (entry.kind === 'host') names.add(entry.hostname);
  else if (entry.kind === 'domain') domains.push(entry.domain);
}

/** An address as a Host's hostname: `::1` → `[::1]`, `::ffff:127.0.0.1` → `127.0.0.1`. */
function addressHostname(address: string): string | undefined {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  const plain = mapped ? mapped[1] : address;
  return parseHost(plain.includes(':') ? `[${plain}]` : plain)?.hostname;
}

/** `localhost`, `127.0.0.0/8` or `::1` (bracketed or not). */
export function isLoopback(host: string): boolean {
  return (
    host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host)
  );
}

function interfaceAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((infos) =>
    (infos ?? []).map((info) => info.address),
  );
}
