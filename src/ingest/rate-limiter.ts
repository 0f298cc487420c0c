// Per-host event rate limits (per second, hour and day) as three token
// buckets. A bucket holds up to `limit` tokens and refills at limit/period, so
// a host may burst up to its per-second limit and then settles to the
// sustained rate; the hour and day buckets cap long floods. take() never
// drops anything: when a bucket is empty it says how long until a token is
// back, and the subscriber stops reading that host's socket for that long
// (back-pressure reaches the PDS through TCP). Refill is computed lazily from
// timestamps on each take(), so an idle host costs no timer and no CPU.
// Limits scale with the host's account count the way indigo's do; trusted
// domains get a multiple of them. An operator override replaces single
// limits of one host (the others keep scaling); a change to 0, or to the
// computed default, clears that limit's override.

export interface RateBaseline {
  perSecond: number;
  perHour: number;
  perDay: number;
}

export interface HostRateLimits {
  perSecond: number;
  perHour: number;
  perDay: number;
}

export const DEFAULT_RATE_BASELINE: RateBaseline = { perSecond: 50, perHour: 2500, perDay: 20_000 };

/** Multiplier applied to every limit of a trusted host. */
export const TRUSTED_RATE_FACTOR = 100;

/** indigo's scaling: per second + accounts/1000, per hour + accounts, per day + 10 × accounts. */
export function computeHostLimits(
  accountCount: number,
  trusted: boolean,
  base: RateBaseline = DEFAULT_RATE_BASELINE,
): HostRateLimits {
  const f = trusted ? TRUSTED_RATE_FACTOR : 1;
  const n = Math.max(0, accountCount);
  return {
    perSecond: (base.perSecond + Math.floor(n / 1000)) * f,
    perHour: (base.perHour + n) * f,
    perDay: (base.perDay + 10 * n) * f,
  };
}

/** Operator-set limits of one host; absent fields follow computeHostLimits. */
export type RateLimitOverride = Partial<HostRateLimits>;

const LIMIT_KEYS = ['perSecond', 'perHour', 'perDay'] as const;

/** The effective limits: the computed ones with the override's fields in place. */
export function applyRateOverride(defaults: HostRateLimits, override?: RateLimitOverride): HostRateLimits {
  if (!override) return defaults;
  const out = { ...defaults };
  for (const k of LIMIT_KEYS) {
    const v = override[k];
    if (v !== undefined && Number.isFinite(v) && v >= 1) out[k] = v;
  }
  return out;
}

/**
 * Merges a change into an existing override; a field changed to 0 or equal
 * to the computed default is dropped. Undefined when nothing is left.
 */
export function mergeRateOverride(
  defaults: HostRateLimits,
  current: RateLimitOverride | undefined,
  change: RateLimitOverride,
): RateLimitOverride | undefined {
  const merged: RateLimitOverride = { ...current };
  for (const k of LIMIT_KEYS) {
    const v = change[k];
    if (v !== undefined) merged[k] = v;
    if (merged[k] === 0 || merged[k] === defaults[k]) delete merged[k];
  }
  return Object.keys(merged).length > 0 ? merged : undefined;
}

const SECOND = 1000;
const HOUR = 3600 * SECOND;
const DAY = 24 * HOUR;

export class HostRateLimiter {
  private limits!: HostRateLimits;
  // tokens and last refill time of the three buckets
  private sTokens = 0;
  private hTokens = 0;
  private dTokens = 0;
  private last = 0;
  /** Events that had to wait for a token (for metrics and tests). */
  throttled = 0;

  constructor(limits: HostRateLimits, now: number) {
    this.setLimits(limits, now, true);
  }

  get current(): HostRateLimits {
    return this.limits;
  }

  /** New limits (account count changed); tokens are clamped to the new capacities. */
  setLimits(limits: HostRateLimits, now: number, fill = false): void {
    this.refill(now);
    this.limits = limits;
    if (fill) {
      this.sTokens = limits.perSecond;
      this.hTokens = limits.perHour;
      this.dTokens = limits.perDay;
      this.last = now;
    } else {
      this.sTokens = Math.min(this.sTokens, limits.perSecond);
      this.hTokens = Math.min(this.hTokens, limits.perHour);
      this.dTokens = Math.min(this.dTokens, limits.perDay);
    }
  }

  private refill(now: number): void {
    const dt = now - this.last;
    if (dt <= 0 || !this.limits) return;
    this.last = now;
    const l = this.limits;
    this.sTokens = Math.min(l.perSecond, this.sTokens + (dt * l.perSecond) / SECOND);
    this.hTokens = Math.min(l.perHour, this.hTokens + (dt * l.perHour) / HOUR);
    this.dTokens = Math.min(l.perDay, this.dTokens + (dt * l.perDay) / DAY);
  }

  /**
   * Takes one token from each bucket and returns 0, or takes nothing and
   * returns the milliseconds until every bucket has a token again.
   */
  take(now: number): number {
    this.refill(now);
    if (this.sTokens >= 1 && this.hTokens >= 1 && this.dTokens >= 1) {
      this.sTokens -= 1;
      this.hTokens -= 1;
      this.dTokens -= 1;
      return 0;
    }
    this.throttled++;
    const l = this.limits;
    const wait = (tokens: number, limit: number, period: number): number =>
      tokens >= 1 ? 0 : ((1 - tokens) * period) / limit;
    return Math.max(
      1,
      Math.ceil(
        Math.max(
          wait(this.sTokens, l.perSecond, SECOND),
          wait(this.hTokens, l.perHour, HOUR),
          wait(this.dTokens, l.perDay, DAY),
        ),
      ),
    );
  }
}
