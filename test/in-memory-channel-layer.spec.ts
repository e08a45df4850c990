import { InMemoryChannelLayer, InMemoryChannelLayerOptions } from '../src/index.js';
import { describeChannelLayerConformance } from './channel-layer.conformance.js';

// A clock the suite moves by hand: expiry is tested without sleeping.
let now = 1_700_000_000_000;

describeChannelLayerConformance('InMemoryChannelLayer', {
  create: (options?: InMemoryChannelLayerOptions) =>
    new InMemoryChannelLayer({ ...options, clock: () => now }),
  advance: async (seconds) => {
    now += seconds * 1000;
  },
});

describe('InMemoryChannelLayer', () => {
  it('deletes a group when its last member leaves', async () => {
    const layer = new InMemoryChannelLayer();
    await layer.groupAdd('room', 'a');
    await layer.groupAdd('room', 'b');
    await layer.groupDiscard('room', 'a');
    expect(layer.groupCount).toBe(1);
    await layer.groupDiscard('room', 'b');
    expect(layer.groupCount).toBe(0);
    await layer.close();
  });

  it('refuses options that would make it misbehave', () => {
    expect(() => new InMemoryChannelLayer({ capacity: 0 })).toThrow(/capacity/);
    expect(() => new InMemoryChannelLayer({ expiry: -1 })).toThrow(/expiry/);
    expect(() => new InMemoryChannelLayer({ channelCapacity: { 'a*': 0 } })).toThrow(/capacity/);
  });
});
