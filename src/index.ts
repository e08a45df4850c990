// The library's public API: what embedding apps import. Two subpaths are apart from it:
// `nest-channels-chat/health` (it needs the optional peer @nestjs/terminus) and `/testing`.
export * from './channel-layer/index.js';
export * from './chat/index.js';
export * from './chat/host-check.js';
export * from './rooms/index.js';
