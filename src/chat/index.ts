export * from './chat-metrics';
export * from './chat-rooms';
export * from './chat-ws.adapter';
export * from './chat.gateway';
export * from './chat.module';
export { CHAT_MODULE_OPTIONS, LOBBY_DIR } from './chat.module-definition';
export * from './chat.options';
export * from './chat.protocol';
export * from './connection-policy';
