import { ConsoleLogger, LogLevel } from '@nestjs/common';

/** How the app logs: Nest's `ConsoleLogger`, as text for people or JSON lines for collectors. */
export interface AppLoggerOptions {
  /** The levels written (`LOG_LEVEL` picks the most verbose one). */
  logLevels: LogLevel[];
  /**
   * `text`: Nest's colored lines; `json`: one JSON object per line (`level`, `pid`, `timestamp`,
   * `message`, `context`), for log collectors.
   * @default 'text'
   */
  format?: 'text' | 'json';
}

/**
 * The app's logger. What it is given to log never includes a chat message's text: the gateway
 * logs events (joins, refusals, closes), not bodies.
 */
export function createAppLogger(options: AppLoggerOptions): ConsoleLogger {
  return options.format === 'json'
    ? new ConsoleLogger({ logLevels: options.logLevels, json: true, colors: false })
    : new ConsoleLogger({ logLevels: options.logLevels });
}
