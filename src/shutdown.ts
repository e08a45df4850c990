import { INestApplication, Logger } from '@nestjs/common';
import { errorText } from './error-text.js';

/** How {@link closeOnSignals} shuts the app down. */
export interface ShutdownOptions {
  /**
   * Milliseconds `app.close()` may take before the process gives up and exits with 1.
   * @default 10000
   */
  timeoutMs?: number;
  /**
   * The signals that start a graceful shutdown.
   * @default ['SIGTERM', 'SIGINT']
   */
  signals?: NodeJS.Signals[];
  /**
   * Ends the process; swap it in tests.
   * @default process.exit
   */
  exit?: (code: number) => void;
}

/**
 * Graceful shutdown on SIGTERM/SIGINT, in place of `app.enableShutdownHooks()` (which re-raises
 * the signal, so the process never exits 0): `app.close()` stops accepting connections, closes
 * every socket with 1001 (giving clients `closeTimeoutMs` to answer), lets them leave their
 * groups, closes the channel layer, then the process exits 0. It exits 1 when closing fails or
 * takes longer than `timeoutMs`, and at once on a second signal.
 */
export function closeOnSignals(app: INestApplication, options: ShutdownOptions = {}): void {
  const logger = new Logger('Shutdown');
  const timeoutMs = options.timeoutMs ?? 10_000;
  const exit = options.exit ?? ((code: number) => process.exit(code));
  let closing = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (closing) {
      logger.warn(`${signal} again: exiting without waiting`);
      return exit(1);
    }
    closing = true;
    logger.log(`${signal}: closing connections`);
    const timer = setTimeout(() => {
      logger.error(`still closing after ${timeoutMs} ms: exiting`);
      exit(1);
    }, timeoutMs).unref();
    app.close().then(
      () => {
        clearTimeout(timer);
        logger.log('closed');
        exit(0);
      },
      (error: unknown) => {
        clearTimeout(timer);
        logger.error(`shutdown failed: ${errorText(error)}`);
        exit(1);
      },
    );
  };
  for (const signal of options.signals ?? ['SIGTERM', 'SIGINT']) process.on(signal, onSignal);
}
