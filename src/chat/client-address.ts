import type { IncomingMessage } from 'node:http';
import { isIPv4, isIPv6 } from 'node:net';

/**
 * The address a client is counted under by the per-address limits. IPv4 addresses count one by
 * one; IPv6 ones by their /64, since one subscriber usually holds a whole /64 and could otherwise
 * walk through it to dodge every per-address limit. IPv4-mapped IPv6 (`::ffff:1.2.3.4`) is IPv4.
 */
export function addressKey(address: string | undefined): string {
  if (!address) return 'unknown';
  if (address.startsWith('::ffff:') && isIPv4(address.slice(7))) return address.slice(7);
  if (!isIPv6(address)) return address;
  const [head, tail = ''] = address.split('::');
  const groups = head === '' ? [] : head.split(':');
  if (groups.length < 4) {
    const tailGroups = tail === '' ? [] : tail.split(':');
    const missing = 8 - groups.length - tailGroups.length;
    groups.push(...Array<string>(missing).fill('0'), ...tailGroups);
  }
  return `${groups
    .slice(0, 4)
    .map((group) => group.toLowerCase().replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}

/**
 * The client's address for a request: the TCP peer, or, behind `trustProxyHops` proxies that each
 * append the address they saw to `X-Forwarded-For`, the entry the outermost trusted proxy wrote.
 * Entries further left are whatever the client claimed, so they are never used.
 */
export function clientAddress(request: IncomingMessage, trustProxyHops: number): string {
  const peer = request.socket.remoteAddress;
  if (trustProxyHops === 0) return addressKey(peer);
  const header = request.headers['x-forwarded-for'];
  const forwarded = (Array.isArray(header) ? header.join(',') : (header ?? ''))
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  // Fewer entries than hops: the client reached an inner proxy directly, which wrote the first.
  const hop = forwarded[Math.max(0, forwarded.length - trustProxyHops)];
  return addressKey(hop !== undefined && (isIPv4(hop) || isIPv6(hop)) ? hop : peer);
}
