// The library's public API: what embedding apps import.
export * from './channel-layer';
export * from './chat';
export * from './health';
export * from './rooms';
