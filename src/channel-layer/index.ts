export * from './channel-layer.errors.js';
export * from './channel-layer.js';
export * from './channel-names.js';
export * from './frozen-message.js';
export { GroupSendStep } from './group-send-step.js';
export type { GroupSendStepCall } from './group-send-step.js';
export * from './in-memory-channel-layer.js';
export * from './redis-channel-layer.js';
