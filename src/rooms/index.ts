export * from './in-memory-room-state.js';
export * from './redis-room-state.js';
export * from './room-state.js';
export * from './rooms.controller.js';
