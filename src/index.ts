// The library's public API: what embedding apps import.
export * from './channel-layer';
export * from './chat';
export { LOBBY_CSP } from './chat/chat.module-definition';
export * from './chat/host-check';
export * from './health';
export * from './rooms';
