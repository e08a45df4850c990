export * from './chat-test-client';
