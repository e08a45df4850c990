import { Injectable, Logger } from '@nestjs/common';
import { HealthIndicatorResult, HealthIndicatorService } from '@nestjs/terminus';
import { ChannelLayer } from '../channel-layer/channel-layer.js';
import { errorText } from '../error-text.js';

/** How long readiness waits for the layer's `ping()` before calling it down. */
export const LAYER_PING_TIMEOUT_MS = 1000;

/**
 * Readiness of the channel layer: its `ping()` answers within {@link LAYER_PING_TIMEOUT_MS}. A
 * failure's body says what is down, never where (no Redis host or port, no driver message): the
 * endpoint may be reachable by more people than the logs are.
 */
@Injectable()
export class ChannelLayerHealthIndicator {
  private readonly logger = new Logger('Health');

  constructor(
    private readonly layer: ChannelLayer,
    private readonly indicators: HealthIndicatorService,
  ) {}

  /** `up` with the ping's latency, or `down` with what failed; the error itself goes to the log. */
  async check(key: string, timeoutMs = LAYER_PING_TIMEOUT_MS): Promise<HealthIndicatorResult> {
    const indicator = this.indicators.check(key);
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    try {
      await Promise.race([
        this.layer.ping(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            timedOut = true;
            reject(new Error(`no answer within ${timeoutMs} ms`));
          }, timeoutMs);
        }),
      ]);
      return indicator.up({ latencyMs: Math.round((performance.now() - started) * 100) / 100 });
    } catch (error) {
      const why = errorText(error);
      this.logger.debug(`${key} is down: ${why}`);
      return indicator.down({
        message: timedOut
          ? `the channel layer did not answer within ${timeoutMs} ms`
          : 'the channel layer failed its ping',
      });
    } finally {
      clearTimeout(timer);
    }
  }
}
