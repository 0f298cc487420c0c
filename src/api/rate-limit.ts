// Per-key token buckets (requestCrawl per client IP, failed admin logins per
// IP). A bucket holds `burst` tokens and refills at `perMinute`/60 per second;
// a request takes one token or is refused with the seconds until the next one.
// The map is bounded: when it is full, the least recently used bucket is
// dropped (src/lru.ts, O(1)), so a flood of addresses can neither grow memory
// nor make each new one cost a scan of the map (a bucket left alone longest
// is the one most likely to have refilled, i.e. to be like a new one anyway).
import { Lru } from '../lru.ts';

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
  private readonly buckets: Lru<string, Bucket>;
  private readonly perMs: number;
  private readonly burst: number;
  private readonly maxKeys: number;
  private readonly now: () => number;

  constructor(readonly opts: RateLimiterOptions) {
    this.perMs = opts.perMinute / 60_000;
    this.burst = opts.burst ?? Math.max(1, opts.perMinute);
    this.maxKeys = opts.maxKeys ?? 10_000;
    this.buckets = new Lru(Math.max(1, this.maxKeys));
    this.now = opts.now ?? Date.now;
  }

  take(key: string): RateDecision {
    if (this.opts.perMinute <= 0) return { ok: true };
    const now = this.now();
    let b = this.buckets.get(key);
    if (b) {
      b.tokens = Math.min(this.burst, b.tokens + (now - b.at) * this.perMs);
      b.at = now;
    } else {
      b = { tokens: this.burst, at: now };
      this.buckets.set(key, b); // evicts the least recently used bucket when full
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - b.tokens) / this.perMs / 1000)) };
  }

  /** True when `key` has no token left right now (does not take one). */
  exhausted(key: string): boolean {
    if (this.opts.perMinute <= 0) return false;
    const b = this.buckets.peek(key);
    if (!b) return false;
    return Math.min(this.burst, b.tokens + (this.now() - b.at) * this.perMs) < 1;
  }

  get size(): number {
    return this.buckets.size;
  }
}
