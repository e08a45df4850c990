export * from './channel-layer';
export * from './channel-layer.errors';
export * from './channel-names';
export * from './frozen-message';
export * from './in-memory-channel-layer';
export * from './redis-channel-layer';
