import { InMemoryChannelLayer, InMemoryRoomState, recordBytes } from '../src/index.js';
import { describeRoomStateConformance } from './room-state.conformance.js';

describeRoomStateConformance('InMemoryRoomState', {
  create: (options) => new InMemoryRoomState(options),
  layerFor: () => new InMemoryChannelLayer(),
});

describe('recordBytes', () => {
  it('counts the message’s and the user’s UTF-8 bytes plus 80', () => {
    expect(recordBytes({ message: '', user: '' })).toBe(80);
    expect(recordBytes({ message: 'héllo', user: 'ann' })).toBe(6 + 3 + 80);
    expect(recordBytes({ message: '😀', user: 'zoë' })).toBe(4 + 4 + 80);
  });
});
