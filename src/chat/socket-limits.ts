import type { Duplex } from 'node:stream';
import type { Logger } from '@nestjs/common';
import { WebSocket } from 'ws';
import type { ChatMetrics, ServerCloseReason } from './chat-metrics.js';
import { CloseCode, ErrorCode } from './chat.protocol.js';
import type { Connection } from './connection.js';
import type { ResolvedConnectionPolicy } from './connection-policy.js';
import { Heartbeat } from './heartbeat.js';
import { MessageDeadline, MessageProgress } from './message-deadline.js';
import type { Outbox } from './outbox.js';
import { RateLimiter, RateVerdict } from './rate-limiter.js';

/**
 * What an open socket may do and hold: frames and bytes a second (the rate limit), time to finish
 * a message (the deadline), a pong for every ping (the heartbeat), and its share of the send
 * buffers (the outbox's budget, checked once a second). A socket past a bound is refused a frame
 * or closed for cause; see `handshake.ts` for who may open one.
 */
export class SocketLimits {
  private readonly heartbeat: Heartbeat;
  private readonly deadline: MessageDeadline;
  private budgetTimer?: NodeJS.Timeout;

  constructor(
    private readonly policy: ResolvedConnectionPolicy,
    maxUnfinishedBytes: number,
    private readonly outbox: Outbox,
    private readonly metrics: ChatMetrics,
    private readonly logger: Logger,
    private readonly connections: ReadonlyMap<WebSocket, Connection>,
  ) {
    this.deadline = new MessageDeadline(
      policy.messageTimeoutMs,
      maxUnfinishedBytes,
      (socket) =>
        this.closeFor(socket, 'message_timeout', CloseCode.PolicyViolation, 'message timeout'),
      (socket) =>
        this.closeFor(socket, 'unfinished_budget', CloseCode.TryAgainLater, 'server busy'),
    );
    this.heartbeat = new Heartbeat(policy.heartbeatIntervalMs, {
      onTimeout: () => {
        metrics.closedByServer('heartbeat_timeout');
        logger.debug('terminated a socket that missed a heartbeat');
      },
      onPong: (socket) => {
        const connection = connections.get(socket);
        if (connection) outbox.drained(connection);
      },
    });
    metrics.measureUnfinished(() => this.deadline.held);
  }

  /** Starts the timers, once the endpoint takes sockets. */
  start(): void {
    this.heartbeat.start();
    this.deadline.start();
    this.budgetTimer = setInterval(() => {
      if (this.connections.size > 0) this.outbox.rebudget(this.connections.keys());
    }, 1000).unref();
    if (this.deadline.supported === false) {
      this.logger.warn(
        'this ws release hides its receiver: messageTimeoutMs and maxUnfinishedBytes are not enforced',
      );
    }
  }

  stop(): void {
    this.heartbeat.stop();
    this.deadline.stop();
    clearInterval(this.budgetTimer);
  }

  /** A socket that just opened: its rate limiter (unless off) and its deadline's count. */
  watch(
    socket: WebSocket,
    stream: Duplex,
  ): { limiter: RateLimiter | undefined; progress: MessageProgress | undefined } {
    this.heartbeat.watch(socket);
    const { rateLimit } = this.policy;
    return {
      limiter: rateLimit ? new RateLimiter(rateLimit, performance.now()) : undefined,
      progress: this.deadline.watch(socket, stream),
    };
  }

  unwatch(socket: WebSocket): void {
    this.heartbeat.unwatch(socket);
    this.deadline.unwatch(socket);
  }

  /** A frame of `bytes`: `false` when it must not be handled (refused, or the socket closed). */
  withinRate(connection: Connection, bytes: number): boolean {
    const { limiter, socket } = connection;
    if (!limiter) return true;
    const verdict = limiter.take(performance.now(), bytes);
    if (verdict === RateVerdict.Allowed) return true;
    this.metrics.rateLimitRefused(limiter.refusedBy);
    if (socket.readyState !== WebSocket.OPEN) return false;
    if (verdict === RateVerdict.Refused) {
      const what = limiter.refusedBy === 'bytes' ? 'too many bytes' : 'too many frames';
      this.outbox.error(connection, ErrorCode.RateLimited, `${what}: this one was not handled`);
    } else {
      this.logger.warn(`closed ${connection.channel ?? 'a socket'}: it kept over the rate limit`);
      this.closeFor(socket, 'rate_limited', CloseCode.PolicyViolation, 'rate limit exceeded');
    }
    return false;
  }

  /**
   * Closes a socket for cause, and stops reading it: whatever it sends after is not worth the
   * CPU. A peer that does not answer the close is cut a second later, instead of holding its
   * socket for ws' 30 s close timeout.
   */
  closeFor(socket: WebSocket, reason: ServerCloseReason, code: CloseCode, why: string): void {
    if (socket.readyState !== WebSocket.OPEN) return;
    this.metrics.closedByServer(reason);
    socket.close(code, why);
    socket.pause();
    setTimeout(() => socket.terminate(), 1000).unref();
  }
}
