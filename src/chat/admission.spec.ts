import type { IncomingMessage } from 'node:http';
import { Admission } from './admission.js';
import { addressKey, clientAddress } from './client-address.js';

const limits = {
  maxConnections: 3,
  maxConnectionsPerAddress: 2,
  handshakeRate: { perSecond: 2, burst: 3 },
};

describe('Admission', () => {
  it('spends a handshake budget per address and says when to retry', () => {
    const admission = new Admission({
      ...limits,
      maxConnections: 100,
      maxConnectionsPerAddress: 0,
    });
    expect([0, 0, 0].map(() => admission.check('a', 0))).toEqual([undefined, undefined, undefined]);
    expect(admission.check('a', 0)).toEqual({
      reason: 'handshake_rate',
      status: 429,
      retryAfter: 1,
    });
    expect(admission.check('b', 0)).toBeUndefined();
    expect(admission.check('a', 500)).toBeUndefined(); // 500 ms at 2/s: one token
  });

  it('caps open sockets per address (429) and in all (503)', () => {
    const admission = new Admission({ ...limits, handshakeRate: false });
    admission.opened('a');
    admission.opened('a');
    expect(admission.check('a', 0)).toEqual({ reason: 'connections_per_address', status: 429 });
    admission.opened('b');
    expect(admission.check('c', 0)).toEqual({ reason: 'connections', status: 503, retryAfter: 5 });
    admission.closed('a');
    expect(admission.check('a', 0)).toBeUndefined();
    expect(admission.connections).toBe(2);
    expect(admission.addresses).toBe(2);
  });

  it('forgets buckets that have refilled', () => {
    const admission = new Admission(limits);
    admission.check('a', 0);
    admission.sweep(1000);
    expect(admission['buckets'].size).toBe(1);
    admission.sweep(1500); // 3 tokens at 2/s
    expect(admission['buckets'].size).toBe(0);
  });
});

describe('client addresses', () => {
  const request = (peer: string, forwarded?: string): IncomingMessage =>
    ({
      socket: { remoteAddress: peer },
      headers: forwarded === undefined ? {} : { 'x-forwarded-for': forwarded },
    }) as unknown as IncomingMessage;

  it('counts IPv6 by its /64 and IPv4-mapped addresses as IPv4', () => {
    expect(addressKey('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8:1:2::7')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
    expect(addressKey('::ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(addressKey('::FFFF:10.1.2.3')).toBe('10.1.2.3');
    expect(addressKey('0:0:0:0:0:ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(addressKey('::ffff:a01:203')).toBe('10.1.2.3');
    expect(addressKey('2001:DB8:0001:0002::1')).toBe('2001:db8:1:2::/64');
    expect(addressKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(addressKey('127.0.0.1')).toBe('127.0.0.1');
  });

  it('ignores X-Forwarded-For unless proxies are trusted', () => {
    expect(clientAddress(request('10.0.0.1', '1.2.3.4'), 0)).toBe('10.0.0.1');
  });

  it('takes the entry the outermost trusted proxy wrote, never one further left', () => {
    expect(clientAddress(request('10.0.0.1', 'spoofed, 1.2.3.4'), 1)).toBe('1.2.3.4');
    expect(clientAddress(request('10.0.0.1', 'spoofed, 1.2.3.4, 10.0.0.2'), 2)).toBe('1.2.3.4');
    expect(clientAddress(request('10.0.0.1', '1.2.3.4'), 2)).toBe('1.2.3.4');
    expect(clientAddress(request('10.0.0.1', 'not-an-ip'), 1)).toBe('10.0.0.1');
    expect(clientAddress(request('10.0.0.1'), 1)).toBe('10.0.0.1');
  });
});
