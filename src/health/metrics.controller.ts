import { Controller, Get, Header, Inject } from '@nestjs/common';
import { Registry } from 'prom-client';
import { ChatMetrics } from '../chat/chat-metrics.js';

/** The token of the registry holding process metrics (memory, CPU, event loop lag, GC). */
export const PROCESS_METRICS = Symbol('process-metrics');

/** `GET /metrics`: the chat's metrics and the process', in Prometheus' text format. */
@Controller('metrics')
export class MetricsController {
  constructor(
    private readonly chat: ChatMetrics,
    @Inject(PROCESS_METRICS) private readonly process: Registry,
  ) {}

  /** Prometheus' text exposition format, version 0.0.4. */
  @Get()
  @Header('Content-Type', Registry.PROMETHEUS_CONTENT_TYPE)
  @Header('Cache-Control', 'no-store')
  async scrape(): Promise<string> {
    const [chat, process] = await Promise.all([this.chat.render(), this.process.metrics()]);
    return `${chat}\n${process}`;
  }
}
