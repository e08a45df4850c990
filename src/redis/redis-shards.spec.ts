import { InvalidChannelLayerInput } from '../channel-layer/channel-layer.errors.js';
import { bucketTags, clusterSlot } from './cluster-slots.js';
import { clusterOf, sentinelOf } from './redis-shards.js';

describe('Redis hosts from URLs', () => {
  it('reads a cluster URL: seeds, credentials, buckets and TLS', () => {
    expect(clusterOf('redis+cluster://u:p%40ss@h1:7000,h2:7001?buckets=8')).toEqual({
      cluster: ['h1:7000', 'h2:7001'],
      buckets: 8,
      options: { redisOptions: { username: 'u', password: 'p@ss' } },
    });
    expect(clusterOf('rediss+cluster://h1:7000')).toMatchObject({
      cluster: ['h1:7000'],
      options: { redisOptions: { tls: {} } },
    });
  });

  it('leaves plain URLs and lists to client-side sharding', () => {
    expect(clusterOf('redis://a:6379,redis://b:6379')).toBeNull();
    expect(clusterOf(['redis://a:6379'])).toBeNull();
  });

  it('refuses a malformed cluster URL', () => {
    expect(() => clusterOf('redis+cluster:/h1')).toThrow(InvalidChannelLayerInput);
  });

  it('reads a Sentinel URL: sentinels, the primary’s name, password and db', () => {
    expect(sentinelOf('redis+sentinel://:secret@s1:26379,s2/mymaster/2')).toEqual({
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26379 },
      ],
      name: 'mymaster',
      failoverDetector: true,
      password: 'secret',
      db: 2,
    });
    expect(() => sentinelOf('redis+sentinel://s1:26379')).toThrow(InvalidChannelLayerInput);
  });
});

describe('cluster buckets', () => {
  it('places bucket i of n in the i-th of n equal slot ranges, the same every time', () => {
    const tags = bucketTags(16);
    expect(tags).toEqual(bucketTags(16));
    tags.forEach((tag, i) => {
      expect(clusterSlot(tag)).toBeGreaterThanOrEqual(i * 1024);
      expect(clusterSlot(tag)).toBeLessThan((i + 1) * 1024);
    });
    expect(new Set(bucketTags(1024)).size).toBe(1024);
  });

  it('hashes a key by its first non-empty hash tag, as Redis does', () => {
    expect(clusterSlot('a:{b3.0}:g:room')).toBe(clusterSlot('{b3.0}'));
    expect(clusterSlot('{}x')).not.toBe(clusterSlot('x'));
    expect(clusterSlot('123456789')).toBe(12739); // CRC-16/XMODEM's check value, mod 16384
  });
});
