// A bounded cache in front of DID resolution, sized for a relay that sees
// events from millions of accounts and must look each one's signing key up
// before it can verify a commit.
//
// - LRU over a Map (insertion order; a hit re-inserts), capped at maxEntries,
//   holding only the parsed identity (did, handle, key bytes, PDS URL), with
//   PDS URLs interned. Measured ~600 bytes of heap per entry, so the default
//   250 000 entries is ~150 MB; size it to the accounts active within ttlMs.
// - Positive entries live ttlMs; definitive failures (not found, tombstoned,
//   bad document, refused did:web host) are cached for negativeTtlMs; transient
//   failures (timeouts, 5xx) for errorTtlMs, so one broken PDS host or a PLC
//   hiccup cannot turn every event into a request.
// - Optional stale-while-revalidate: for staleTtlMs after expiry the old
//   identity is returned at once and a refresh runs in the background; if that
//   refresh fails transiently the stale identity keeps being served.
// - Concurrent lookups of one DID share one request, and all requests pass
//   through a FIFO concurrency limiter so a burst of unknown DIDs is resolved
//   steadily without blocking each other.
// - purge(did) (for #identity events) drops the entry and detaches any
//   in-flight request, whose late answer is then not stored.
import { type Logger, silentLogger } from '../../log.ts';
import { ConcurrencyLimiter } from './concurrency-limiter.ts';
import { type AtprotoIdentity, DidDocumentError } from './did-document.ts';
import { DidNotFoundError, DidResolutionError, type IdentityResolver } from './did-resolver.ts';

export interface IdentityCacheOptions {
  resolver: IdentityResolver;
  /** Default 250 000 (~600 bytes each). */
  maxEntries?: number;
  /** Default 1 hour. */
  ttlMs?: number;
  /** TTL of definitive failures. Default 5 minutes. */
  negativeTtlMs?: number;
  /** TTL of transient failures. Default 10 seconds; 0 disables. */
  errorTtlMs?: number;
  /** How long after expiry a stale identity may be served while refreshing. Default 0 (off). */
  staleTtlMs?: number;
  /** Resolutions in flight at once. Default 32. */
  maxConcurrent?: number;
  /** Resolutions waiting for a slot before new ones are refused. Default 100 000. */
  maxQueued?: number;
  now?: () => number;
  logger?: Logger;
}

export interface ResolveOptions {
  /** Ignore any cached entry (and a stale window) and fetch again. */
  forceRefresh?: boolean;
}

export interface IdentityCacheStats {
  size: number;
  hits: number;
  staleHits: number;
  negativeHits: number;
  misses: number;
  /** Lookups that joined a request already in flight. */
  coalesced: number;
  resolutions: number;
  failures: number;
  evictions: number;
  inflight: number;
  running: number;
  queued: number;
}

type Entry =
  | { ok: true; identity: AtprotoIdentity; expiresAt: number; staleUntil: number; retryAt: number }
  | { ok: false; error: Error; expiresAt: number };

interface Inflight {
  promise: Promise<AtprotoIdentity>;
}

export class IdentityCache implements IdentityResolver {
  private readonly resolver: IdentityResolver;
  private readonly maxEntries: number;
  private readonly ttlMs: number;
  private readonly negativeTtlMs: number;
  private readonly errorTtlMs: number;
  private readonly staleTtlMs: number;
  private readonly now: () => number;
  private readonly log: Logger;
  private readonly limiter: ConcurrencyLimiter;
  private readonly entries = new Map<string, Entry>();
  private readonly inflight = new Map<string, Inflight>();
  /** One copy of each PDS URL: most accounts live on a few hundred PDS hosts. */
  private readonly pdsUrls = new Map<string, string>();
  private readonly counters = {
    hits: 0,
    staleHits: 0,
    negativeHits: 0,
    misses: 0,
    coalesced: 0,
    resolutions: 0,
    failures: 0,
    evictions: 0,
  };

  constructor(opts: IdentityCacheOptions) {
    this.resolver = opts.resolver;
    this.maxEntries = opts.maxEntries ?? 250_000;
    this.ttlMs = opts.ttlMs ?? 60 * 60_000;
    this.negativeTtlMs = opts.negativeTtlMs ?? 5 * 60_000;
    this.errorTtlMs = opts.errorTtlMs ?? 10_000;
    this.staleTtlMs = opts.staleTtlMs ?? 0;
    this.now = opts.now ?? Date.now;
    this.log = opts.logger ?? silentLogger;
    this.limiter = new ConcurrencyLimiter(opts.maxConcurrent ?? 32, opts.maxQueued ?? 100_000);
  }

  /** The cached identity if it is fresh (or within the stale window), without fetching. */
  get(did: string): AtprotoIdentity | undefined {
    const e = this.entries.get(did);
    if (!e?.ok) return undefined;
    const t = this.now();
    if (t >= e.staleUntil) return undefined;
    // A hit through get() is a use like any other: it counts, and it keeps the
    // entry young in the LRU (the relay's hot path reads through get()).
    this.touch(did, e);
    if (t < e.expiresAt) this.counters.hits++;
    else this.counters.staleHits++;
    return e.identity;
  }

  async resolve(did: string, opts: ResolveOptions = {}): Promise<AtprotoIdentity> {
    if (!opts.forceRefresh) {
      const e = this.entries.get(did);
      if (e !== undefined) {
        const t = this.now();
        if (t < e.expiresAt) {
          this.touch(did, e);
          if (e.ok) {
            this.counters.hits++;
            return e.identity;
          }
          this.counters.negativeHits++;
          throw e.error;
        }
        if (e.ok && t < e.staleUntil) {
          this.touch(did, e);
          this.counters.staleHits++;
          if (t >= e.retryAt) this.fetch(did).catch(() => {});
          return e.identity;
        }
        this.entries.delete(did);
      }
    }
    this.counters.misses++;
    return this.fetch(did);
  }

  /** Forgets a DID (e.g. on an #identity event); an in-flight answer for it is discarded. */
  purge(did: string): void {
    this.entries.delete(did);
    this.inflight.delete(did);
  }

  clear(): void {
    this.entries.clear();
    this.inflight.clear();
  }

  stats(): IdentityCacheStats {
    return {
      ...this.counters,
      size: this.entries.size,
      inflight: this.inflight.size,
      running: this.limiter.active,
      queued: this.limiter.waiting,
    };
  }

  private touch(did: string, e: Entry): void {
    this.entries.delete(did);
    this.entries.set(did, e);
  }

  private fetch(did: string): Promise<AtprotoIdentity> {
    const existing = this.inflight.get(did);
    if (existing) {
      this.counters.coalesced++;
      return existing.promise;
    }
    const token: Inflight = { promise: undefined as unknown as Promise<AtprotoIdentity> };
    token.promise = this.limiter
      .run(() => {
        this.counters.resolutions++;
        return this.resolver.resolve(did);
      })
      .then(
        (identity) => {
          if (this.inflight.get(did) === token) {
            this.inflight.delete(did);
            if (identity.pdsEndpoint !== undefined)
              identity.pdsEndpoint = this.internPds(identity.pdsEndpoint);
            const t = this.now();
            const expiresAt = t + this.ttlMs;
            this.store(did, {
              ok: true,
              identity,
              expiresAt,
              staleUntil: expiresAt + this.staleTtlMs,
              retryAt: 0,
            });
          }
          return identity;
        },
        (err: unknown) => {
          this.counters.failures++;
          const error = err instanceof Error ? err : new Error(String(err));
          if (this.inflight.get(did) === token) {
            this.inflight.delete(did);
            this.storeFailure(did, error);
          }
          throw error;
        },
      );
    this.inflight.set(did, token);
    return token.promise;
  }

  private internPds(url: string): string {
    const known = this.pdsUrls.get(url);
    if (known !== undefined) return known;
    if (this.pdsUrls.size >= 100_000) this.pdsUrls.clear();
    this.pdsUrls.set(url, url);
    return url;
  }

  private storeFailure(did: string, error: Error): void {
    const definitive =
      error instanceof DidNotFoundError ||
      error instanceof DidDocumentError ||
      (error instanceof DidResolutionError && !error.transient);
    const current = this.entries.get(did);
    if (!definitive && current?.ok && this.now() < current.staleUntil) {
      // keep serving the stale identity; a stale hit after errorTtlMs retries
      current.retryAt = this.now() + this.errorTtlMs;
      this.log.debug({ did, err: error.message }, 'identity refresh failed, keeping stale entry');
      return;
    }
    const ttl = definitive ? this.negativeTtlMs : this.errorTtlMs;
    if (ttl <= 0) {
      this.entries.delete(did);
      return;
    }
    // a captured stack trace costs ~1 KB; cached failures are rethrown to
    // later callers, for whom the original stack means nothing anyway
    error.stack = `${error.name}: ${error.message}`;
    this.store(did, { ok: false, error, expiresAt: this.now() + ttl });
  }

  private store(did: string, e: Entry): void {
    this.entries.delete(did);
    this.entries.set(did, e);
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
      this.counters.evictions++;
    }
  }
}
