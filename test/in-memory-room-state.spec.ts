import { InMemoryChannelLayer, InMemoryRoomState } from '../src';
import { describeRoomStateConformance } from './room-state.conformance';

describeRoomStateConformance('InMemoryRoomState', {
  create: (options) => new InMemoryRoomState(options),
  layerFor: () => new InMemoryChannelLayer(),
});
