import type { IncomingMessage } from 'node:http';
import { isIPv4, isIPv6 } from 'node:net';

/**
 * The address a client is counted under by the per-address limits. IPv4 addresses count one by
 * one; IPv6 ones by their /64, since one subscriber usually holds a whole /64 and could otherwise
 * walk through it to dodge every per-address limit. IPv4-mapped IPv6 (`::ffff:1.2.3.4`) is IPv4.
 */
export function addressKey(address: string | undefined): string {
  if (!address) return 'unknown';
  if (isIPv4(address)) return address;
  const groups = isIPv6(address) ? ipv6Groups(address) : undefined;
  if (!groups) return address;
  if (groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff) {
    return [groups[6] >> 8, groups[6] & 0xff, groups[7] >> 8, groups[7] & 0xff].join('.');
  }
  return `${groups
    .slice(0, 4)
    .map((group) => group.toString(16))
    .join(':')}::/64`;
}

/** The eight 16-bit groups of an IPv6 address, in any of its spellings (zone dropped). */
function ipv6Groups(address: string): number[] | undefined {
  let text = address.toLowerCase().split('%')[0];
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number);
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::');
  const parse = (part: string | undefined): number[] =>
    part ? part.split(':').map((group) => parseInt(group, 16)) : [];
  const left = parse(head);
  const right = parse(tail);
  const groups =
    tail === undefined
      ? left
      : [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right];
  return groups.length === 8 && groups.every((group) => group >= 0 && group <= 0xffff)
    ? groups
    : undefined;
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
