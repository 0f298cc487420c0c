// A bounded cache in front of DID resolution, sized for a relay that sees
// events from millions of accounts and must look each one's signing key up
// before it can verify a commit.
//
// - LRU (src/lru.ts: O(1) hits and evictions at any size), capped at maxEntries,
//   holding only the parsed identity (did, handle, key bytes, PDS URL), with
//   PDS URLs interned. Measured ~600 bytes of heap per entry, so the default
//   250 000 entries is ~150 MB; size it to the accounts active within ttlMs.
// - Also capped in bytes (maxBytes, default 256 MiB), negative entries
//   included: each entry is charged ENTRY_OVERHEAD_BYTES plus the length of
//   the strings it keeps (DID key, handle, error text), and the oldest entries
//   are evicted until both caps hold. DIDs over 2 KB (the atproto limit) are
//   refused before the resolver and never cached, and the error text a
//   cached failure keeps is cut to MAX_ERROR_TEXT chars, so one entry costs
//   at most a few KB whatever a host or a DID document says (issue 12).
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
// - purge(did) drops the entry and detaches any in-flight request, whose late
//   answer is then not stored.
// - resolve(did, {forceRefresh}) (an #identity event, a failed signature, a
//   host mismatch) fetches afresh but keeps the entry until the answer comes:
//   a transient failure keeps serving it, and an in-flight request from
//   before is detached, not joined. (How often a caller may force one is the
//   caller's rule: the validator limits refreshes a wrong host provokes.)
// - Resolutions are counted by result (ok, not-found, invalid, transient);
//   isTransientIdentityError() tells callers whether to wait and retry.
import { type Logger, silentLogger } from '../../log.ts';
import { Lru } from '../../lru.ts';
import { DID_MAX } from '../syntax.ts';
import { ConcurrencyLimiter } from './concurrency-limiter.ts';
import { type AtprotoIdentity, DidDocumentError } from './did-document.ts';
import { DidNotFoundError, DidResolutionError, type IdentityResolver } from './did-resolver.ts';

export interface IdentityCacheOptions {
  resolver: IdentityResolver;
  /** Default 250 000 (~600 bytes each). */
  maxEntries?: number;
  /** Bytes all entries may take, estimated (see entryBytes). Default 256 MiB. */
  maxBytes?: number;
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
  /** Estimated bytes of all entries (bounded by maxBytes). */
  bytes: number;
  hits: number;
  staleHits: number;
  negativeHits: number;
  misses: number;
  /** Lookups that joined a request already in flight. */
  coalesced: number;
  resolutions: number;
  failures: number;
  /** Resolutions by result. */
  results: Record<ResolutionResult, number>;
  evictions: number;
  inflight: number;
  running: number;
  queued: number;
}

export type ResolutionResult = 'ok' | 'not-found' | 'invalid' | 'transient';

/**
 * True when a resolution failure may well succeed later (timeout, network
 * error, 5xx, 429, the resolution queue full): the caller should wait and
 * retry rather than treat the DID as unresolvable. Not found, tombstoned,
 * an invalid document or a refused did:web host are answers, not outages.
 */
export function isTransientIdentityError(err: unknown): boolean {
  if (err instanceof DidNotFoundError || err instanceof DidDocumentError) return false;
  if (err instanceof DidResolutionError) return err.transient;
  return true;
}

function resultOf(err: unknown): ResolutionResult {
  if (err instanceof DidNotFoundError) return 'not-found';
  return isTransientIdentityError(err) ? 'transient' : 'invalid';
}

/**
 * An entry, with its estimated heap bytes (charged against maxBytes). Built
 * as a literal with every field, never by spreading: V8 gave `{ ...data,
 * bytes }` copies a layout that made each hit ~4× slower to read (measured
 * 600 vs 165 ns per lookup; the relay reads two per commit).
 */
type Entry =
  | {
      ok: true;
      identity: AtprotoIdentity;
      expiresAt: number;
      staleUntil: number;
      retryAt: number;
      bytes: number;
    }
  | { ok: false; error: Error; expiresAt: number; bytes: number };

/** Fixed heap cost charged per entry (measured ~600 bytes with a parsed identity). */
const ENTRY_OVERHEAD_BYTES = 600;
/** Longest error message (and stack) a cached failure keeps. */
const MAX_ERROR_TEXT = 512;

/** Estimated heap bytes of an entry: the overhead plus the strings it holds (PDS URLs are interned). */
function entryBytes(did: string, e: Entry): number {
  const strings = e.ok
    ? (e.identity.handle?.length ?? 0) + (e.identity.did === did ? 0 : e.identity.did.length)
    : e.error.message.length + (e.error.stack?.length ?? 0);
  return ENTRY_OVERHEAD_BYTES + did.length + strings;
}

function truncateText(s: string): string {
  return s.length > MAX_ERROR_TEXT ? `${s.slice(0, MAX_ERROR_TEXT)}…` : s;
}

interface Inflight {
  promise: Promise<AtprotoIdentity>;
}

export class IdentityCache implements IdentityResolver {
  private readonly resolver: IdentityResolver;
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  private bytes = 0;
  private readonly ttlMs: number;
  private readonly negativeTtlMs: number;
  private readonly errorTtlMs: number;
  private readonly staleTtlMs: number;
  private readonly now: () => number;
  private readonly log: Logger;
  private readonly limiter: ConcurrencyLimiter;
  /** Evicted by this class (both caps), so its capacity is unbounded. */
  private readonly entries = new Lru<string, Entry>(Number.POSITIVE_INFINITY);
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
  private readonly results: Record<ResolutionResult, number> = {
    ok: 0,
    'not-found': 0,
    invalid: 0,
    transient: 0,
  };

  constructor(opts: IdentityCacheOptions) {
    this.resolver = opts.resolver;
    this.maxEntries = opts.maxEntries ?? 250_000;
    this.maxBytes = opts.maxBytes ?? 256 * 1024 * 1024;
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
    // A hit through get() is a use like any other: it counts, and it makes the
    // entry the most recent (the relay's hot path reads through get()).
    const e = this.entries.get(did);
    if (!e?.ok) return undefined;
    const t = this.now();
    if (t >= e.staleUntil) return undefined;
    if (t < e.expiresAt) this.counters.hits++;
    else this.counters.staleHits++;
    return e.identity;
  }

  async resolve(did: string, opts: ResolveOptions = {}): Promise<AtprotoIdentity> {
    if (did.length > DID_MAX || !did.startsWith('did:')) {
      // never a cache key, a request or a log line: a host chose this string
      throw new DidResolutionError(
        `${did.slice(0, 64)}…`,
        `not a DID of at most ${DID_MAX} chars (${did.length} chars)`,
        false,
      );
    }
    if (opts.forceRefresh) {
      // a request from before the refresh may carry the old identity: do not join it
      this.inflight.delete(did);
    } else {
      const e = this.entries.get(did);
      if (e !== undefined) {
        const t = this.now();
        if (t < e.expiresAt) {
          if (e.ok) {
            this.counters.hits++;
            return e.identity;
          }
          this.counters.negativeHits++;
          throw e.error;
        }
        if (e.ok && t < e.staleUntil) {
          this.counters.staleHits++;
          if (t >= e.retryAt) this.fetch(did).catch(() => {});
          return e.identity;
        }
        this.remove(did);
      }
    }
    this.counters.misses++;
    return this.fetch(did);
  }

  /** Forgets a DID (e.g. on an #identity event); an in-flight answer for it is discarded. */
  purge(did: string): void {
    this.remove(did);
    this.inflight.delete(did);
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
    this.inflight.clear();
  }

  stats(): IdentityCacheStats {
    return {
      ...this.counters,
      results: { ...this.results },
      size: this.entries.size,
      bytes: this.bytes,
      inflight: this.inflight.size,
      running: this.limiter.active,
      queued: this.limiter.waiting,
    };
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
              bytes: 0,
            });
          }
          this.results.ok++;
          return identity;
        },
        (err: unknown) => {
          this.counters.failures++;
          this.results[resultOf(err)]++;
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
    const current = this.entries.peek(did);
    if (!definitive && current?.ok && this.now() < current.staleUntil) {
      // keep serving the stale identity; a stale hit after errorTtlMs retries
      current.retryAt = this.now() + this.errorTtlMs;
      this.log.debug({ did, err: error.message }, 'identity refresh failed, keeping stale entry');
      return;
    }
    const ttl = definitive ? this.negativeTtlMs : this.errorTtlMs;
    if (ttl <= 0) {
      this.remove(did);
      return;
    }
    // a captured stack trace costs ~1 KB; cached failures are rethrown to
    // later callers, for whom the original stack means nothing anyway. The
    // message may carry text from a DID document or a host: cut it.
    error.message = truncateText(error.message);
    error.stack = `${error.name}: ${error.message}`;
    this.store(did, { ok: false, error, expiresAt: this.now() + ttl, bytes: 0 });
  }

  private remove(did: string): void {
    const e = this.entries.peek(did);
    if (e === undefined) return;
    this.entries.delete(did);
    this.bytes -= e.bytes;
  }

  /** Inserts (or replaces) an entry, then evicts the oldest until both the entry and the byte caps hold. */
  private store(did: string, e: Entry): void {
    this.remove(did);
    e.bytes = entryBytes(did, e);
    this.entries.set(did, e);
    this.bytes += e.bytes;
    while (this.entries.size > this.maxEntries || (this.bytes > this.maxBytes && this.entries.size > 1)) {
      const oldest = this.entries.evictOldest();
      if (oldest) this.bytes -= oldest[1].bytes;
      this.counters.evictions++;
    }
  }
}
