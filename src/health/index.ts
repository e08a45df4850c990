export * from './channel-layer.health.js';
export * from './health.controller.js';
export * from './health.module.js';
export * from './metrics.controller.js';
