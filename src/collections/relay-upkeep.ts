// The collection index's side of the relay wiring: a subscriber of the
// committed-event stream (eventlog/committed.ts), plus the
// two lookups the cleaner needs from the relay (an account's status in the
// metadata store, an account's current collections from its PDS). Repos are
// fetched through the relay's RepoFetcher (validate/repo-fetch.ts: size and
// block limits, read in a worker, the commit signature checked against the
// account's key), which returns only the rev and collection names.
//
// Commits cost the main thread nothing to decode: it subscribes to the
// committed-event stream (eventlog/committed.ts), whose #commit events carry
// the commit's effect on the account's collections, worked out by a
// validation worker from the commit's verified blocks (including the MST path
// around a deleted key: protocol/commit-collections.ts). Calls are not
// awaited by the stream; the indexer orders them per DID, and `drain()` waits
// for the ones in flight before the index is closed.
//
// With a #sync recompute queue (sync-recompute.ts) the upkeep also feeds it:
// `syncAccepted` queues the DID of each appended #sync, every commit's rev is
// told to the queue before the commit goes to the indexer (so a repo fetched
// before that commit is not applied over it), a relay resync covers a queued
// #sync, and a deleted account leaves the queue.
import { indexStatusOf } from '../accounts/status.ts';
import type { CommittedEvent } from '../eventlog/committed.ts';
import type { Logger } from '../log.ts';
import type { CommitCollections } from '../protocol/commit-collections.ts';
import type { PublicKey } from '../protocol/keys.ts';
import type { MetadataStore } from '../store/metadata-store.ts';
import type { RepoFetcher, RepoFetchPurpose } from '../validate/repo-fetch.ts';
import type { RepoCollections, SyncRecomputeQueue } from './sync-recompute.ts';
import type { CollectionIndexer } from './upkeep.ts';

/** The repo a resync fetched, as the index needs it (read in a worker: rev and collection names). */
export interface ResyncedRepo {
  rev: string;
  collections: readonly string[];
}

/** Keeps the collection index in step with what the relay publishes. */
export class CollectionIndexUpkeep {
  private readonly inFlight = new Set<Promise<unknown>>();
  /** calls that failed (each is logged) */
  errors = 0;

  constructor(
    private readonly indexer: CollectionIndexer,
    private readonly log: Logger,
    private readonly syncQueue?: SyncRecomputeQueue,
  ) {}

  /**
   * The committed-event stream's subscriber (eventlog/committed.ts): every
   * durable event of this process, in log order, with what validation
   * learned about it (EventMeta) — no frame is decoded here.
   */
  readonly onCommitted = (events: readonly CommittedEvent[]): void => {
    for (const e of events) {
      const m = e.meta;
      if (!m) continue;
      switch (m.type) {
        case '#commit':
          this.commitApplied(m.did, m.rev, m.collections);
          break;
        case '#account':
          void this.accountStatus(m.did, m.status);
          break;
        case '#sync':
          // an upstream #sync queues a recompute; the relay's own resync also
          // brings the repo's collections, which cover it at once
          this.syncAccepted(m.did, m.rev);
          if (m.resync) this.repoResynced(m.did, { rev: m.rev, collections: m.resync.collections });
          break;
      }
    }
  };

  /** A relayed #commit: its effect on the account's collections was worked out by a validation worker. */
  commitApplied(did: string, rev: string, effect: CommitCollections): void {
    this.syncQueue?.commitSeen(did, rev);
    if (this.indexer.applyKnownEffect(did, effect)) return; // nothing to write (most commits)
    this.track(did, 'commit', () => this.indexer.applyEffect(did, effect));
  }

  accountStatus(did: string, status: string): Promise<void> {
    if (status === 'deleted') this.syncQueue?.forget(did);
    return this.track(did, 'account status', () => this.indexer.applyAccountStatus(did, status));
  }

  repoResynced(did: string, repo: ResyncedRepo): void {
    this.track(did, 'resync', () => {
      const done = this.indexer.resync(did, repo.collections);
      this.syncQueue?.resynced(did, repo.rev);
      return done;
    });
  }

  /** A #sync (upstream, or the relay's own resync) was appended: queue a recompute of the account. */
  syncAccepted(did: string, rev: string): void {
    this.syncQueue?.syncAccepted(did, rev);
  }

  /** Resolves once every call made so far has finished. */
  async drain(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  /** Runs one index update; failures are logged and counted, never thrown. */
  private track(did: string, what: string, run: () => Promise<unknown>): Promise<void> {
    let p: Promise<unknown>;
    try {
      p = run();
    } catch (err) {
      p = Promise.reject(err);
    }
    const done: Promise<void> = p.then(
      () => {},
      (err: unknown) => {
        this.errors++;
        this.log.error({ err, did }, `collection index: ${what} update failed`);
      },
    );
    this.inFlight.add(done);
    void done.finally(() => this.inFlight.delete(done));
    return done;
  }
}

/** An account's status as the collection index reads it (accounts/status.ts), or null when the relay has no such account. */
export function relayAccountStatus(
  store: Pick<MetadataStore, 'getAccountByDid'>,
): (did: string) => Promise<string | null> {
  return async (did) => {
    const account = await store.getAccountByDid(did);
    return account ? indexStatusOf(account) : null;
  };
}

export interface RepoCollectionsFetcherOptions {
  /** The relay's repo fetch (limits, worker, metrics). */
  repos: Pick<RepoFetcher, 'fetchRepo'>;
  /** DID → PDS endpoint and signing key (the relay's identity cache) */
  identity: { resolve(did: string): Promise<{ pdsEndpoint?: string; signingKey?: PublicKey }> };
  timeoutMs?: number;
}

/**
 * The cleaner's `fetchCollections`: the account's repo from its PDS
 * (com.atproto.sync.getRepo), read down to its collection names. null only
 * when the PDS says the repo does not exist; anything else throws (a
 * RepoFetchError says whether a retry could help).
 */
export function repoCollectionsFetcher(
  opts: RepoCollectionsFetcherOptions,
): (did: string) => Promise<string[] | null> {
  const fetchRepo = repoStateFetcher(opts, 'cleaner');
  return async (did) => (await fetchRepo(did))?.collections ?? null;
}

/**
 * The same fetch, keeping the repo's commit rev (the #sync recompute queue's
 * `fetchRepo`). The commit signature is checked against the key of the
 * account's DID document; a document without a key is refused.
 */
export function repoStateFetcher(
  opts: RepoCollectionsFetcherOptions,
  purpose: RepoFetchPurpose = 'sync-recompute',
): (did: string, signal?: AbortSignal) => Promise<RepoCollections | null> {
  return async (did, signal) => {
    const { pdsEndpoint, signingKey } = await opts.identity.resolve(did);
    if (!pdsEndpoint) throw new Error(`${did} has no PDS endpoint`);
    if (!signingKey) throw new Error(`${did} has no signing key`);
    const repo = await opts.repos.fetchRepo(did, pdsEndpoint, {
      purpose,
      key: signingKey,
      signal,
      timeoutMs: opts.timeoutMs,
    });
    return repo && { rev: repo.rev, collections: repo.collections };
  };
}
