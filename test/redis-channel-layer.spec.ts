import { RedisChannelLayer, RedisChannelLayerOptions } from '../src';
import { describeChannelLayerConformance } from './channel-layer.conformance';
import { REDIS_URL, describeWithRedis, uniquePrefix } from './redis-test-support';

describeWithRedis('RedisChannelLayer on a real Redis', () => {
  describeChannelLayerConformance('RedisChannelLayer', {
    // Each layer gets its own prefix: tests never see each other's keys.
    create: (options?: RedisChannelLayerOptions) =>
      new RedisChannelLayer({ ...options, hosts: REDIS_URL, prefix: uniquePrefix() }),
    // Expiry is kept by Redis, on its own clock: time has to really pass.
    advance: (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000)),
    expiry: 1,
  });
});
