export * from './chat-test-client.js';
