import { DynamicModule, Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { ChannelLayerHealthIndicator } from './channel-layer.health.js';
import { HealthController } from './health.controller.js';
import { MetricsController, PROCESS_METRICS } from './metrics.controller.js';

/**
 * `GET /health` (liveness), `GET /health/ready` (readiness: the channel layer answers) and
 * `GET /metrics` (Prometheus) for one ChatModule.
 */
@Module({})
export class HealthModule {
  /**
   * Health and metrics of `chat`: pass the very module object the app imports (the same object
   * is one module instance), so they report on the app's layer and gateway.
   *
   * ```ts
   * const chat = ChatModule.forRoot({ ... });
   * @Module({ imports: [chat, HealthModule.forChat(chat)] })
   * ```
   */
  static forChat(chat: DynamicModule): DynamicModule {
    return {
      module: HealthModule,
      imports: [chat, TerminusModule.forRoot({ logger: false })],
      controllers: [HealthController, MetricsController],
      providers: [
        ChannelLayerHealthIndicator,
        {
          provide: PROCESS_METRICS,
          useFactory: () => {
            const registry = new Registry();
            collectDefaultMetrics({ register: registry });
            return registry;
          },
        },
      ],
    };
  }
}
