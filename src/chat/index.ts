export * from './chat-metrics.js';
export * from './chat-rooms.js';
export * from './chat-ws.adapter.js';
export * from './chat.gateway.js';
export * from './chat.module.js';
export { CHAT_MODULE_OPTIONS, LOBBY_DIR } from './chat.module-definition.js';
export * from './chat.options.js';
export * from './chat.protocol.js';
export * from './connection-policy.js';
