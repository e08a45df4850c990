export * from './chat-ws.adapter';
export * from './chat.gateway';
export * from './chat.module';
export * from './chat.options';
export * from './chat.protocol';
