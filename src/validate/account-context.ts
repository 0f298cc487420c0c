// The account an event is checked against (validator.ts owns one
// AccountResolver; the per-type rules, rules-*.ts, ask it): the DID's
// identity, whether the frame's host is the account's PDS (host authority),
// and the account row (created on first sight, throttled over its host's
// limit, moved on migration); and a commit's signature against the current
// key.
//
// The steady state costs no promise: `accountContextNow` answers
// synchronously when the identity and the account are both in memory and
// agree with the frame's host (the #commit fast path). Anything else goes
// through `accountContext`, which may wait on the network; before it does,
// it parks the repo (order-queue.ts), so other repos go on.
//
// Identity resolution failures (issue 13): a transient one (timeout,
// connection error, 5xx, 429, queue full) is not a verdict. The resolution
// is retried with back-off and the repo stays parked (resolveIdentity): an
// outage makes its events wait, it does not drop them. Only a definitive
// answer or the end of identityRetryMaxMs (did:web: identityWebRetryMaxMs)
// drops, as identity-unresolved.
//
// Forced refreshes: a host mismatch or a bad signature re-resolves the DID
// once (the account may have moved, or rotated its key); one that changed
// nothing is noted, and suppresses the next forced refresh for the same
// reason for FRUITLESS_REFRESH_MS, so events from a wrong host, or badly
// signed ones, cannot each cost a PLC request.
import type { InboundFrame } from '../ingest/frame-sink.ts';
import type { Logger } from '../log.ts';
import { Lru } from '../lru.ts';
import type { AtprotoIdentity } from '../protocol/identity/did-document.ts';
import { isTransientIdentityError } from '../protocol/identity/identity-cache.ts';
import type { PublicKey } from '../protocol/keys.ts';
import type { Account, MetadataStore } from '../store/metadata-store.ts';
import { type Decision, drop, type Job, type RepoQueue } from './job.ts';
import type { ValidationMetrics } from './metrics.ts';
import type { OrderQueue } from './order-queue.ts';
import type { IdentitySource, ValidationSettings } from './validator.ts';
import { checkSignature, type VerifiedCommit } from './verify-frame.ts';

/** What a frame's event is checked against. */
export interface AccountContext {
  identity: AtprotoIdentity;
  account: Account;
  /** The identity was fetched afresh while handling this event (no second re-resolve). */
  refreshed: boolean;
}

/** accountContext's answer is a drop instead of a context. */
export function isDecision(v: AccountContext | Decision): v is Decision {
  return 'events' in v;
}

/** How long a forced identity refresh that changed nothing suppresses the next one for the same reason. */
const FRUITLESS_REFRESH_MS = 60_000;
/** Bound of those notes (oldest forgotten first). */
const MAX_FRUITLESS_REFRESH_NOTES = 100_000;

/** host[:port] of a PDS endpoint URL, normalised like the store's hostnames. */
export function pdsHostname(endpoint: string | undefined): string | undefined {
  if (!endpoint) return undefined;
  try {
    return new URL(endpoint).host.toLowerCase().replace(/\.$/, '');
  } catch {
    return undefined;
  }
}

const stripDefaultPort = (h: string) => h.replace(/:(443|80)$/, '');

/**
 * PDS endpoint → its host without a default port, per endpoint string: the
 * identity cache interns endpoint URLs (a few hundred PDSes serve most
 * accounts), so this parses each once instead of once per event. Bounded:
 * cleared when it grows past 100,000 entries.
 */
const authorityOfEndpoint = new Map<string, string | null>();

function authorityOf(endpoint: string | undefined): string | undefined {
  if (!endpoint) return undefined;
  let a = authorityOfEndpoint.get(endpoint);
  if (a === undefined) {
    const host = pdsHostname(endpoint);
    a = host === undefined ? null : stripDefaultPort(host);
    if (authorityOfEndpoint.size >= 100_000) authorityOfEndpoint.clear();
    authorityOfEndpoint.set(endpoint, a);
  }
  return a ?? undefined;
}

/** True when the DID document's PDS is the host a frame came from (default ports ignored on both sides). */
export function isAuthoritativeHost(identity: AtprotoIdentity, hostname: string): boolean {
  const pds = authorityOf(identity.pdsEndpoint);
  if (pds === undefined) return false;
  return pds === stripDefaultPort(hostname);
}

function keyEquals(a: PublicKey | undefined, b: PublicKey | undefined): boolean {
  if (!a || !b || a.alg !== b.alg || a.bytes.length !== b.bytes.length) return false;
  for (let i = 0; i < a.bytes.length; i++) if (a.bytes[i] !== b.bytes[i]) return false;
  return true;
}

export interface AccountResolverOptions {
  identity: IdentitySource;
  store: MetadataStore;
  order: OrderQueue;
  settings: ValidationSettings;
  metrics: ValidationMetrics;
  log: Logger;
  now: () => number;
}

export class AccountResolver {
  private readonly identity: IdentitySource;
  private readonly store: MetadataStore;
  private readonly order: OrderQueue;
  private readonly settings: ValidationSettings;
  private readonly metrics: ValidationMetrics;
  private readonly log: Logger;
  private readonly now: () => number;
  /**
   * DID → a recent forced refresh that changed nothing, and why (see
   * mayForceRefresh). Bounded: the oldest notes go first (at worst a refresh
   * happens again).
   */
  private readonly fruitlessRefresh = new Lru<string, { reason: string; until: number }>(
    MAX_FRUITLESS_REFRESH_NOTES,
  );
  /** Repos waiting to retry a DID resolution (for the waiting-events gauge). */
  private readonly identityWaiting = new Set<RepoQueue>();
  /** Wake-ups of those waits (close() ends them at once). */
  private readonly pauses = new Set<() => void>();
  private closed = false;

  constructor(opts: AccountResolverOptions) {
    this.identity = opts.identity;
    this.store = opts.store;
    this.order = opts.order;
    this.settings = opts.settings;
    this.metrics = opts.metrics;
    this.log = opts.log;
    this.now = opts.now;
  }

  /** Repos waiting to retry a DID resolution, and the events queued in them. */
  identityWaitingCounts(): { repos: number; events: number } {
    let events = 0;
    for (const q of this.identityWaiting) events += q.jobs.length;
    return { repos: this.identityWaiting.size, events };
  }

  /** Ends the retry waits at once; resolutions failing from now on are not retried. */
  close(): void {
    this.closed = true;
    for (const wake of this.pauses) wake();
    this.pauses.clear();
  }

  /**
   * The repo's identity: cached, or resolved while the repo is parked (its
   * events step out of the order queue, so other repos go on). A transient
   * failure is not a verdict (issue 13): the resolution is retried with
   * back-off (1 s doubling to 10 s; the cache answers repeats within its
   * error TTL itself) for up to identityRetryMaxMs, and the repo's events
   * wait, so the host's cursor does not pass them. Only a definitive answer
   * (not found, tombstoned, invalid document) or the end of that time drops.
   */
  async resolveIdentity(q: RepoQueue, force: boolean): Promise<AtprotoIdentity> {
    if (!force) {
      const cached = this.identity.get(q.did);
      if (cached) return cached;
    }
    this.order.park(q);
    const limit = q.did.startsWith('did:web:')
      ? this.settings.identityWebRetryMaxMs
      : this.settings.identityRetryMaxMs;
    let delay = 1000;
    for (;;) {
      try {
        const identity = await this.identity.resolve(q.did, force ? { forceRefresh: true } : {});
        q.identityFailingSince = undefined;
        return identity;
      } catch (err) {
        if (this.closed || !isTransientIdentityError(err)) throw err;
        // one deadline per repo: its later events do not each wait the whole time again
        q.identityFailingSince ??= this.now();
        if (this.now() - q.identityFailingSince + delay > limit) throw err;
        this.metrics.identityRetry();
        this.identityWaiting.add(q);
        try {
          await this.pause(delay);
        } finally {
          this.identityWaiting.delete(q);
        }
        if (this.closed) throw err;
        delay = Math.min(delay * 2, 10_000);
      }
    }
  }

  /**
   * A forced refresh of a DID's document is skipped when the last one for the
   * same reason (a given host not being authoritative, or the signing key)
   * changed nothing less than FRUITLESS_REFRESH_MS ago: events from a wrong
   * host, or badly signed ones, cannot each cost a PLC request (issue 13).
   * The first event after a real migration or key rotation still refreshes.
   */
  private mayForceRefresh(did: string, reason: string): boolean {
    const f = this.fruitlessRefresh.peek(did);
    if (f === undefined || f.reason !== reason) return true;
    if (this.now() >= f.until) {
      this.fruitlessRefresh.delete(did);
      return true;
    }
    return false;
  }

  private noteFruitlessRefresh(did: string, reason: string): void {
    this.fruitlessRefresh.set(did, { reason, until: this.now() + FRUITLESS_REFRESH_MS });
  }

  /** Resolves after `ms`, or at once when the validator closes. */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pauses.delete(done);
        resolve();
      }, ms);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      this.pauses.add(done);
    });
  }

  /**
   * accountContext's answer without waiting, when everything it needs is in
   * memory — the steady state: the identity cached and naming the frame's
   * host, the account cached and on that host. Undefined otherwise (then
   * accountContext does the whole job: resolution, re-resolution, creation,
   * migration). Same result, minus the promises a #commit would otherwise
   * cost on the main thread.
   */
  accountContextNow(job: Job, q: RepoQueue): AccountContext | undefined {
    const frame = job.frame as InboundFrame;
    const identity = this.identity.get(q.did);
    if (identity === undefined || !isAuthoritativeHost(identity, frame.hostname)) return undefined;
    const account = this.store.cachedAccountByDid?.(q.did);
    if (account === undefined || account.hostId !== frame.hostId) return undefined;
    return { identity, account, refreshed: false };
  }

  /** Identity, host authority (re-resolving once on mismatch) and the account row (created, or moved on migration). */
  async accountContext(job: Job, q: RepoQueue, forceResolve = false): Promise<AccountContext | Decision> {
    const frame = job.frame as InboundFrame;
    let identity: AtprotoIdentity;
    const hostKey = `host ${frame.hostname}`;
    const force = forceResolve && this.mayForceRefresh(q.did, hostKey);
    let refreshed = force;
    try {
      identity = await this.resolveIdentity(q, force);
      if (
        !isAuthoritativeHost(identity, frame.hostname) &&
        !refreshed &&
        this.mayForceRefresh(q.did, hostKey)
      ) {
        // maybe the account moved here: one fresh look at its document
        this.metrics.event('re-resolve');
        identity = await this.resolveIdentity(q, true);
        refreshed = true;
      }
      if (refreshed && !isAuthoritativeHost(identity, frame.hostname))
        this.noteFruitlessRefresh(q.did, hostKey);
    } catch (err) {
      return drop('identity-unresolved', (err as Error).message);
    }
    if (!isAuthoritativeHost(identity, frame.hostname)) {
      return drop('wrong-host', `DID document names ${identity.pdsEndpoint ?? 'no PDS'}`);
    }
    let account = await this.store.getAccountByDid(q.did);
    if (!account) {
      account = await this.createAccount(q.did, frame.hostId);
    } else if (account.hostId !== frame.hostId) {
      this.metrics.event('migration');
      this.log.info(
        { did: q.did, from: account.hostId, to: frame.hostId, host: frame.hostname },
        'account moved',
      );
      account = (await this.store.setAccountHost(account.uid, frame.hostId)) ?? account;
    }
    return { identity, account, refreshed };
  }

  private async createAccount(did: string, hostId: number): Promise<Account> {
    const host = await this.store.getHost(hostId);
    const throttled = host !== undefined && !host.trusted && host.accountCount >= host.accountLimit;
    const res = await this.store.createAccount({ did, hostId, status: throttled ? 'throttled' : 'active' });
    if (res.created && throttled) {
      this.metrics.event('throttled');
      this.log.info({ did, hostId, limit: host?.accountLimit }, 'new account over its host limit: throttled');
    }
    return res.value;
  }

  /** Signature with the account's current key; one forced re-resolution on failure (key rotation). */
  async checkCommitSignature(
    r: VerifiedCommit,
    ctx: AccountContext,
    q: RepoQueue,
    workerKey: PublicKey | undefined,
  ): Promise<Decision | undefined> {
    if (r.sig === 'ok') return undefined;
    const signed = r.signed;
    if (!signed) return drop('bad-signature', 'no signed bytes');
    const attempt = (id: AtprotoIdentity) => {
      if (!id.signingKey) return 'no-key';
      this.metrics.signatureOnMainThread();
      return checkSignature(id.signingKey, signed.message, signed.sig);
    };
    let identity = ctx.identity;
    // the worker's 'bad' stands for the key it was given: checked again only with another
    let s =
      r.sig === 'bad' && keyEquals(workerKey, identity.signingKey) ? ('bad' as const) : attempt(identity);
    if (s === 'bad' && !ctx.refreshed && this.mayForceRefresh(q.did, 'key')) {
      this.metrics.event('re-resolve');
      try {
        const before = identity.signingKey;
        identity = await this.resolveIdentity(q, true);
        if (!keyEquals(before, identity.signingKey)) s = attempt(identity);
        else this.noteFruitlessRefresh(q.did, 'key');
      } catch (err) {
        return drop('identity-unresolved', (err as Error).message);
      }
    }
    if (s === 'ok') return undefined;
    if (s === 'high-s') return drop('high-s-signature', 'signature is in high-S form');
    if (s === 'no-key') return drop('no-signing-key', 'DID document has no #atproto key');
    return drop('bad-signature', 'signature does not verify against the account key');
  }
}
