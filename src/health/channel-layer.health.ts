import { Injectable } from '@nestjs/common';
import { HealthIndicatorResult, HealthIndicatorService } from '@nestjs/terminus';
import { ChannelLayer } from '../channel-layer/channel-layer';

/** How long readiness waits for the layer's `ping()` before calling it down. */
export const LAYER_PING_TIMEOUT_MS = 1000;

/** Readiness of the channel layer: its `ping()` answers within {@link LAYER_PING_TIMEOUT_MS}. */
@Injectable()
export class ChannelLayerHealthIndicator {
  constructor(
    private readonly layer: ChannelLayer,
    private readonly indicators: HealthIndicatorService,
  ) {}

  /** `up` with the ping's latency, or `down` with why. */
  async check(key: string, timeoutMs = LAYER_PING_TIMEOUT_MS): Promise<HealthIndicatorResult> {
    const indicator = this.indicators.check(key);
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.layer.ping(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer within ${timeoutMs} ms`)),
            timeoutMs,
          );
        }),
      ]);
      return indicator.up({ latencyMs: Math.round((performance.now() - started) * 100) / 100 });
    } catch (error) {
      return indicator.down({ message: error instanceof Error ? error.message : String(error) });
    } finally {
      clearTimeout(timer);
    }
  }
}
