import { Controller, Get } from '@nestjs/common';
import { HealthCheck, HealthCheckResult, HealthCheckService } from '@nestjs/terminus';
import { ChannelLayerHealthIndicator } from './channel-layer.health.js';

/**
 * Liveness and readiness, in Terminus' format: 200 with `{"status":"ok",...}` when healthy, 503
 * with `{"status":"error",...}` when not.
 */
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly layer: ChannelLayerHealthIndicator,
  ) {}

  /** Liveness: the process serves HTTP. Checks nothing else, so a layer outage never restarts it. */
  @Get()
  @HealthCheck()
  live(): Promise<HealthCheckResult> {
    return this.health.check([]);
  }

  /** Readiness: the channel layer answers, so messages can flow. */
  @Get('ready')
  @HealthCheck()
  ready(): Promise<HealthCheckResult> {
    return this.health.check([() => this.layer.check('channel_layer')]);
  }
}
