import { STATUS_CODES, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { HttpException, Logger } from '@nestjs/common';
import { Admission } from './admission.js';
import type { ChatMetrics } from './chat-metrics.js';
import type { AuthenticateHook, ChatUser, RoomAccessHook } from './chat.options.js';
import { clientAddress } from './client-address.js';
import { guardConnections } from './connection-guard.js';
import type { ResolvedConnectionPolicy } from './connection-policy.js';
import { DESCRIPTOR_HEADROOM, descriptorLimit } from './descriptor-limit.js';
import { HostCheck, compileHostCheck } from './host-check.js';
import { OriginCheck, compileOriginCheck } from './origin-check.js';
import { errorText } from '../error-text.js';

/** ws' verifyClient callback: accept, or refuse with an HTTP status. */
export type VerifyDone = (
  accept: boolean,
  status?: number,
  message?: string,
  headers?: Record<string, string>,
) => void;

/** Who a handshake that passed belongs to, for the socket it opens. */
export interface Admitted {
  /** The user `authenticate` returned, when the module has the hook. */
  user?: ChatUser;
  /** Where the client is counted by the per-address limits. */
  address: string;
}

/** The host's hooks a handshake runs, and the room a request's URL names. */
export interface HandshakeHooks {
  authenticate?: AuthenticateHook;
  canJoin?: RoomAccessHook;
  /** The room of `request`'s URL; undefined when the URL is refused later, at the socket. */
  roomOf(request: IncomingMessage): string | undefined;
}

/**
 * Who may open a socket, decided before the upgrade: the client address's handshake budget and
 * the connection caps (429 or 503), the Host (403: one this server is reachable as, against DNS
 * rebinding), the Origin (403, as Channels' `OriginValidator`), then the host's `authenticate`
 * (401) and `canJoin` (403), cheapest first. It also holds the HTTP server's TCP connections to their request-head deadline
 * (`guardConnections`), and counts open sockets per address (`opened`, `closed`).
 */
export class Handshake {
  private readonly logger = new Logger('ChatGateway');
  private readonly admission: Admission;
  private readonly originAllowed: OriginCheck;
  private readonly hostAllowed: HostCheck;
  /** Users and addresses of handshakes that passed, until their socket opens. */
  private readonly passed = new WeakMap<IncomingMessage, Admitted>();
  private proxyHinted = false;
  private unguard?: () => void;
  private sweeper?: NodeJS.Timeout;

  /**
   * @param policy the connection policy; `maxConnections` is fitted to the descriptor limit here
   *   unless the host set it (`maxConnectionsSet`).
   */
  constructor(
    private readonly policy: ResolvedConnectionPolicy,
    maxConnectionsSet: boolean,
    private readonly hooks: HandshakeHooks,
    private readonly metrics: ChatMetrics,
  ) {
    this.fitDescriptors(maxConnectionsSet);
    this.admission = new Admission(policy);
    this.originAllowed = compileOriginCheck(policy);
    this.hostAllowed = compileHostCheck(policy);
    metrics.measureAddresses(() => this.admission.addresses);
  }

  /** Guards `httpServer`'s connections and starts forgetting idle budgets. */
  start(httpServer: HttpServer): void {
    this.sweeper = setInterval(() => this.admission.sweep(performance.now()), 10_000).unref();
    this.unguard = guardConnections(
      httpServer,
      {
        handshakeTimeoutMs: this.policy.handshakeTimeoutMs,
        // Behind trusted proxies the TCP peer is a proxy, shared by every client.
        maxPendingPerAddress:
          this.policy.trustProxyHops > 0 ? 0 : this.policy.maxConnectionsPerAddress,
      },
      (reason) => this.metrics.tcpConnectionDropped(reason),
    );
  }

  stop(): void {
    clearInterval(this.sweeper);
    this.unguard?.();
    this.unguard = undefined;
  }

  /** What the handshake of `request` found; its address is computed now if it never passed. */
  admitted(request: IncomingMessage): Admitted {
    return (
      this.passed.get(request) ?? { address: clientAddress(request, this.policy.trustProxyHops) }
    );
  }

  /** A socket of `address` opened. */
  opened(address: string): void {
    this.admission.opened(address);
  }

  /** A socket of `address` closed. */
  closed(address: string): void {
    this.admission.closed(address);
  }

  /** ws' `verifyClient`. */
  verify(request: IncomingMessage, done: VerifyDone): void {
    const address = clientAddress(request, this.policy.trustProxyHops);
    const refused = this.admission.check(address, performance.now());
    if (refused) {
      this.metrics.handshakeRefused(refused.reason);
      if (refused.reason === 'connections_per_address') this.hintProxy(request);
      const headers =
        refused.retryAfter === undefined
          ? undefined
          : { 'Retry-After': String(refused.retryAfter) };
      return done(false, refused.status, STATUS_CODES[refused.status], headers);
    }
    if (!this.hostAllowed(request.headers.host, request.socket)) {
      this.metrics.handshakeRefused('host');
      this.logger.debug(`refused a handshake for Host ${JSON.stringify(request.headers.host)}`);
      return done(false, 403, 'Forbidden');
    }
    if (!this.originAllowed(request.headers.origin, request.headers.host)) {
      this.metrics.handshakeRefused('origin');
      this.logger.debug(
        `refused a handshake from origin ${JSON.stringify(request.headers.origin)}`,
      );
      return done(false, 403, 'Forbidden');
    }
    if (!this.hooks.authenticate && !this.hooks.canJoin) {
      this.passed.set(request, { address });
      return done(true);
    }
    void this.admit(request, done, address);
  }

  /**
   * The handshake's verdict, from the host's `authenticate` and `canJoin` hooks. The handshake
   * holds its place in the connection caps while they decide, and they have `handshakeTimeoutMs`
   * together (then HTTP 503): a slow hook must not let a crowd past the caps, nor hold sockets
   * open.
   */
  private async admit(request: IncomingMessage, done: VerifyDone, address: string): Promise<void> {
    this.admission.opened(address);
    let timer: NodeJS.Timeout | undefined;
    let decided = false;
    const decide: VerifyDone = (...verdict) => {
      if (decided) return;
      decided = true;
      clearTimeout(timer);
      this.admission.closed(address);
      done(...verdict);
    };
    if (this.policy.handshakeTimeoutMs > 0) {
      timer = setTimeout(() => {
        this.metrics.handshakeRefused('auth_timeout');
        this.logger.warn(`authenticate took over ${this.policy.handshakeTimeoutMs} ms: refused`);
        decide(false, 503, 'Service Unavailable', { 'Retry-After': '5' });
      }, this.policy.handshakeTimeoutMs);
    }
    // Which hook an HttpException came from, for the refusal's metric.
    let stage: 'auth' | 'room' = 'auth';
    try {
      const { authenticate, canJoin, roomOf } = this.hooks;
      const user = authenticate ? await authenticate(request) : undefined;
      if (decided) return;
      if (authenticate && !user) {
        this.metrics.handshakeRefused('auth');
        return decide(false, 401, 'Unauthorized');
      }
      const room = canJoin ? roomOf(request) : undefined;
      stage = 'room';
      if (
        canJoin &&
        room !== undefined &&
        !(await canJoin({ user: user ?? undefined, room, request }))
      ) {
        if (decided) return;
        this.metrics.handshakeRefused('room');
        return decide(false, 403, 'Forbidden');
      }
      if (decided) return;
      this.passed.set(request, { user: user ?? undefined, address });
      decide(true);
    } catch (error) {
      if (decided) return;
      if (error instanceof HttpException) {
        this.metrics.handshakeRefused(stage);
        return decide(false, error.getStatus(), error.message);
      }
      this.logger.error(`authenticate or canJoin hook failed: ${errorText(error)}`);
      decide(false, 500, 'Internal Server Error');
    }
  }

  /**
   * Keeps `maxConnections` sockets from taking the descriptors HTTP and `/health` need: the
   * default shrinks to the process's limit less {@link DESCRIPTOR_HEADROOM}; a value the host set
   * is kept, with a warning.
   */
  private fitDescriptors(explicit: boolean): void {
    const descriptors = descriptorLimit();
    const fits = descriptors === undefined ? Infinity : descriptors - DESCRIPTOR_HEADROOM;
    if (this.policy.maxConnections <= fits) return;
    const limit = `the process's ${descriptors} file descriptors (ulimit -n)`;
    if (explicit) {
      this.logger.warn(
        `maxConnections (${this.policy.maxConnections}) leaves fewer than ${DESCRIPTOR_HEADROOM} ` +
          `of ${limit} for HTTP and /health: lower it or raise the limit`,
      );
    } else {
      this.policy.maxConnections = Math.max(1, fits);
      this.logger.log(`maxConnections is ${this.policy.maxConnections}, to fit ${limit}`);
    }
  }

  /** Once: per-address limits biting on proxied requests usually mean `trustProxyHops` is unset. */
  private hintProxy(request: IncomingMessage): void {
    if (this.proxyHinted || this.policy.trustProxyHops > 0) return;
    if (request.headers['x-forwarded-for'] === undefined) return;
    this.proxyHinted = true;
    this.logger.warn(
      'maxConnectionsPerAddress refused a handshake that came through a proxy (X-Forwarded-For): ' +
        'set trustProxyHops (TRUST_PROXY_HOPS) to count clients, not the proxy',
    );
  }
}
