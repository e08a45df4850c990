/** How many handshakes one client address may start, as a token bucket. */
export interface HandshakeRateOptions {
  /**
   * Handshakes per second, sustained.
   * @default 10
   */
  perSecond?: number;
  /**
   * Handshakes at once before the rate applies.
   * @default 30
   */
  burst?: number;
}

/** What {@link Admission} needs, defaults applied. */
export interface AdmissionLimits {
  maxConnections: number;
  /** 0: no per-address limit. */
  maxConnectionsPerAddress: number;
  handshakeRate: Required<HandshakeRateOptions> | false;
}

/** Why a handshake was refused before any work was spent on it; the metric's label. */
export type AdmissionRefusal = 'handshake_rate' | 'connections' | 'connections_per_address';

/** A refusal as the HTTP answer it becomes. */
export interface Refused {
  reason: AdmissionRefusal;
  status: 429 | 503;
  /** Seconds, for `Retry-After`. */
  retryAfter?: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Who may open a WebSocket now: a handshake budget per client address, and caps on open sockets
 * in all and per address. Decided from counters only, before the handshake costs anything else.
 * Sockets are counted from `opened` to `closed`; a check between two handshakes of one address
 * sees the first only once it has opened, so an async `authenticate` can let a few more through.
 */
export class Admission {
  private open = 0;
  private readonly perAddress = new Map<string, number>();
  /** Buckets of addresses that handshook recently; full ones are forgotten by `sweep`. */
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly limits: AdmissionLimits) {}

  /** Open sockets. */
  get connections(): number {
    return this.open;
  }

  /** Addresses with at least one open socket. */
  get addresses(): number {
    return this.perAddress.size;
  }

  /** Whether `address` may start a handshake at `now` (ms, monotonic); takes a token if so. */
  check(address: string, now: number): Refused | undefined {
    const rate = this.limits.handshakeRate;
    if (rate) {
      let bucket = this.buckets.get(address);
      if (!bucket) this.buckets.set(address, (bucket = { tokens: rate.burst, at: now }));
      bucket.tokens = Math.min(
        rate.burst,
        bucket.tokens + ((now - bucket.at) * rate.perSecond) / 1000,
      );
      bucket.at = now;
      if (bucket.tokens < 1) {
        const retryAfter = Math.ceil((1 - bucket.tokens) / rate.perSecond);
        return { reason: 'handshake_rate', status: 429, retryAfter };
      }
      bucket.tokens -= 1;
    }
    if (this.open >= this.limits.maxConnections) {
      return { reason: 'connections', status: 503, retryAfter: 5 };
    }
    const cap = this.limits.maxConnectionsPerAddress;
    if (cap > 0 && (this.perAddress.get(address) ?? 0) >= cap) {
      return { reason: 'connections_per_address', status: 429 };
    }
    return undefined;
  }

  opened(address: string): void {
    this.open++;
    this.perAddress.set(address, (this.perAddress.get(address) ?? 0) + 1);
  }

  closed(address: string): void {
    this.open--;
    const left = (this.perAddress.get(address) ?? 0) - 1;
    if (left > 0) this.perAddress.set(address, left);
    else this.perAddress.delete(address);
  }

  /** Forgets buckets that have refilled: they are the same as no bucket. Call now and then. */
  sweep(now: number): void {
    const rate = this.limits.handshakeRate;
    if (!rate) return;
    const full = (rate.burst * 1000) / rate.perSecond;
    for (const [address, bucket] of this.buckets) {
      if (now - bucket.at >= full) this.buckets.delete(address);
    }
  }
}
