export * from './channel-layer.errors.js';
export * from './channel-layer.js';
export * from './channel-names.js';
export * from './frozen-message.js';
export { GroupAddStep, GroupDiscardStep, GroupSendStep } from './redis-steps.js';
export type {
  GroupAddStepCall,
  GroupDiscardStepCall,
  GroupSendStepCall,
  GroupStepCall,
} from './redis-steps.js';
export * from './in-memory-channel-layer.js';
export * from './redis-channel-layer.js';
