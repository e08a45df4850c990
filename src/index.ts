// The library's public API: what embedding apps import. The health module and the test client
// are subpaths (`nest-channels-chat/health`, `/testing`): their dependencies are optional peers.
export * from './channel-layer/index.js';
export * from './chat/index.js';
export * from './chat/host-check.js';
export * from './rooms/index.js';
