// Per-host event rate limits as HostManager keeps them: one HostRateLimiter
// per subscribed host (kept when a cursor reset replaces the subscriber, so
// its buckets carry over), the limits computed from the host's account count
// and trust (rate-limiter.ts), and the operator's overrides. Overrides live
// in one metadata-store setting (host id → override), read at start and
// rewritten under a lock on each change, and are pushed straight into the
// host's live limiter. The periodic refresh re-reads account counts and trust
// from the store. Bounded by the hosts in the store: one limiter, one default
// and at most one override per host.
import type { Logger } from '../log.ts';
import type { Host, MetadataStore } from '../store/metadata-store.ts';
import { isTrustedHostname } from './host-policy.ts';
import {
  applyRateOverride,
  computeHostLimits,
  HostRateLimiter,
  type HostRateLimits,
  mergeRateOverride,
  type RateBaseline,
  type RateLimitOverride,
} from './rate-limiter.ts';

declare module '../store/metadata-store.ts' {
  interface RelaySettings {
    /** Operator rate-limit overrides by host id (fields absent follow the computed limits). */
    ingestHostRateOverrides: Record<string, RateLimitOverride>;
  }
}

export interface HostLimitsOptions {
  store: MetadataStore;
  baseline: RateBaseline;
  /** Trusted domain suffixes (RELAY_TRUSTED_DOMAINS, parsed). */
  trusted: readonly string[];
  now: () => number;
  log: Logger;
}

/** A subscribed host's limits as the admin listing shows them. */
export interface HostLimitsView {
  /** Effective limits (the computed ones with any override applied). */
  rateLimits: HostRateLimits;
  /** What the limits would be without an override (account count, trust). */
  defaultRateLimits: HostRateLimits;
  /** The operator's override, when one is set. */
  rateLimitOverride?: RateLimitOverride;
}

export class HostLimits {
  private readonly limiters = new Map<number, HostRateLimiter>();
  private readonly defaults = new Map<number, HostRateLimits>();
  private readonly overrides = new Map<number, RateLimitOverride>();
  private overrideLock: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: HostLimitsOptions) {}

  /** Reads the saved overrides (at start). */
  async load(): Promise<void> {
    const saved = (await this.opts.store.getSetting('ingestHostRateOverrides')) ?? {};
    this.overrides.clear();
    for (const [id, o] of Object.entries(saved)) {
      if (/^\d+$/.test(id) && o && typeof o === 'object') this.overrides.set(Number(id), o);
    }
  }

  /** The limiter a subscriber of `host` reads through (the host's existing one, if any). */
  limiterFor(host: Host): HostRateLimiter {
    const limiter = this.limiters.get(host.id) ?? new HostRateLimiter(this.effective(host), this.opts.now());
    this.limiters.set(host.id, limiter);
    this.defaults.set(host.id, this.computed(host));
    return limiter;
  }

  /** Drops a host's limiter (it is no longer subscribed); its override stays. */
  forget(hostId: number): void {
    this.limiters.delete(hostId);
    this.defaults.delete(hostId);
  }

  /** The limits of a host that has a limiter. */
  view(hostId: number): HostLimitsView {
    const override = this.overrides.get(hostId);
    return {
      rateLimits: this.limiters.get(hostId)!.current,
      defaultRateLimits: this.defaults.get(hostId)!,
      ...(override ? { rateLimitOverride: override } : {}),
    };
  }

  /** The effective rate limits of a host (also for hosts without a limiter). */
  effective(host: Host): HostRateLimits {
    return applyRateOverride(this.computed(host), this.overrides.get(host.id));
  }

  /**
   * Operator override of a host's event rate limits: the given fields replace
   * the computed ones (0, or a value equal to the computed one, clears that field).
   * Persisted, applied to the live limiter at once. Returns the effective limits.
   */
  setOverride(hostId: number, change: RateLimitOverride): Promise<HostRateLimits> {
    const { store } = this.opts;
    const run = this.overrideLock.then(async () => {
      const host = await store.getHost(hostId);
      if (!host) throw new Error(`unknown host ${hostId}`);
      const defaults = this.computed(host);
      const saved = (await store.getSetting('ingestHostRateOverrides')) ?? {};
      const next = mergeRateOverride(defaults, saved[String(hostId)], change);
      if (next) saved[String(hostId)] = next;
      else delete saved[String(hostId)];
      await store.setSetting('ingestHostRateOverrides', saved);
      if (next) this.overrides.set(hostId, next);
      else this.overrides.delete(hostId);
      const effective = applyRateOverride(defaults, next);
      if (this.limiters.has(hostId)) this.defaults.set(hostId, defaults);
      this.limiters.get(hostId)?.setLimits(effective, this.opts.now());
      this.opts.log.info({ host: host.hostname, override: next ?? null, effective }, 'host rate limits set');
      return effective;
    });
    this.overrideLock = run.catch(() => {});
    return run;
  }

  /** Recomputes every limiter's limits from the store (account counts, trust, account limits). */
  async refresh(): Promise<void> {
    let after: number | undefined;
    for (;;) {
      const page = await this.opts.store.listHosts({ after, limit: 1000 });
      const now = this.opts.now();
      for (const h of page) {
        const limiter = this.limiters.get(h.id);
        if (!limiter) continue;
        this.defaults.set(h.id, this.computed(h));
        limiter.setLimits(this.effective(h), now);
      }
      if (page.length < 1000) break;
      after = page[page.length - 1].id;
    }
  }

  private computed(host: Host): HostRateLimits {
    const trusted = host.trusted || isTrustedHostname(host.hostname, this.opts.trusted);
    return computeHostLimits(host.accountCount, trusted, this.opts.baseline);
  }
}
