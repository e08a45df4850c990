export * from './in-memory-room-state';
export * from './redis-room-state';
export * from './room-state';
export * from './rooms.controller';
