// Per-key token buckets (requestCrawl per client IP, failed admin logins per
// IP). A bucket holds `burst` tokens and refills at `perMinute`/60 per second;
// a request takes one token or is refused with the seconds until the next one.
// The map is bounded: when it is full, buckets that have refilled completely
// (indistinguishable from new ones) are dropped first, then the oldest ones,
// so a flood of spoofed addresses cannot grow memory without limit.

export interface RateLimiterOptions {
  /** Sustained rate; 0 disables the limit. */
  perMinute: number;
  /** Tokens available at once (default: perMinute, at least 1). */
  burst?: number;
  /** Keys tracked at once (default 10,000). */
  maxKeys?: number;
  now?: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export type RateDecision = { ok: true } | { ok: false; retryAfterSeconds: number };

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly perMs: number;
  private readonly burst: number;
  private readonly maxKeys: number;
  private readonly now: () => number;

  constructor(readonly opts: RateLimiterOptions) {
    this.perMs = opts.perMinute / 60_000;
    this.burst = opts.burst ?? Math.max(1, opts.perMinute);
    this.maxKeys = opts.maxKeys ?? 10_000;
    this.now = opts.now ?? Date.now;
  }

  take(key: string): RateDecision {
    if (this.opts.perMinute <= 0) return { ok: true };
    const now = this.now();
    let b = this.buckets.get(key);
    if (b) {
      b.tokens = Math.min(this.burst, b.tokens + (now - b.at) * this.perMs);
      b.at = now;
      // Re-insert so Map order stays least-recently-used first.
      this.buckets.delete(key);
    } else {
      this.evictIfFull(now);
      b = { tokens: this.burst, at: now };
    }
    this.buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - b.tokens) / this.perMs / 1000)) };
  }

  /** True when `key` has no token left right now (does not take one). */
  exhausted(key: string): boolean {
    if (this.opts.perMinute <= 0) return false;
    const b = this.buckets.get(key);
    if (!b) return false;
    return Math.min(this.burst, b.tokens + (this.now() - b.at) * this.perMs) < 1;
  }

  get size(): number {
    return this.buckets.size;
  }

  private evictIfFull(now: number): void {
    if (this.buckets.size < this.maxKeys) return;
    for (const [k, b] of this.buckets) {
      if (b.tokens + (now - b.at) * this.perMs >= this.burst) this.buckets.delete(k);
    }
    while (this.buckets.size >= this.maxKeys) {
      const oldest = this.buckets.keys().next().value;
      if (oldest === undefined) break;
      this.buckets.delete(oldest);
    }
  }
}
