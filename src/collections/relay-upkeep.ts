// The collection index's side of the relay wiring: an observer the validator
// calls once an event is durably in the log (validate/observer.ts), plus the
// two lookups the cleaner needs from the relay (an account's status in the
// metadata store, an account's current collections from its PDS). Repos are
// fetched through the relay's RepoFetcher (validate/repo-fetch.ts: size and
// block limits, read in a worker, the commit signature checked against the
// account's key), which returns only the rev and collection names.
//
// Commits cost the main thread little: the validator hands over the parsed
// #commit, and a commit with only creates/updates needs just its op paths. A
// commit with a delete needs the MST path around the deleted key (presence.ts)
// — the commit's own blocks, already verified by a worker — so only then is
// its CAR read again (readCar, hashes checked once more) and the commit block
// decoded for the new tree root. Calls are not awaited by the validator; the
// indexer orders them per DID, and `drain()` waits for the ones in flight
// before the index is closed.
//
// With a #sync recompute queue (sync-recompute.ts) the upkeep also feeds it:
// `syncAccepted` queues the DID of each appended #sync, every commit's rev is
// told to the queue before the commit goes to the indexer (so a repo fetched
// before that commit is not applied over it), a relay resync covers a queued
// #sync, and a deleted account leaves the queue.
import type { Logger } from '../log.ts';
import { BlockMap, readCar } from '../protocol/car.ts';
import { decodeCommit } from '../protocol/commit.ts';
import type { CommitEvent } from '../protocol/events.ts';
import type { PublicKey } from '../protocol/keys.ts';
import type { Account, MetadataStore } from '../store/metadata-store.ts';
import type { ResyncedRepo, ValidatorObserver } from '../validate/observer.ts';
import type { RepoFetcher, RepoFetchPurpose } from '../validate/repo-fetch.ts';
import type { RepoCollections, SyncRecomputeQueue } from './sync-recompute.ts';
import type { CollectionIndexer, IndexedCommit } from './upkeep.ts';

const EMPTY_BLOCKS = new BlockMap();

/** The IndexedCommit of a relayed #commit; reads the blocks only when an op deletes. */
export function indexedCommitOf(did: string, commit: CommitEvent): IndexedCommit {
  const ops = commit.ops.map((op) => ({ action: op.action, path: op.path }));
  if (!ops.some((op) => op.action === 'delete')) {
    // Without a delete the indexer never reads the tree (commitEffect), so the
    // commit CID stands in for the root and the block map stays empty.
    return { did, dataRoot: commit.commit, blocks: EMPTY_BLOCKS, ops };
  }
  const car = readCar(commit.blocks);
  const block = car.blocks.get(commit.commit);
  if (!block) throw new Error('commit CAR lacks the commit block');
  return { did, dataRoot: decodeCommit(block).data, blocks: car.blocks, ops };
}

/** Keeps the collection index in step with what the relay publishes. */
export class CollectionIndexUpkeep implements ValidatorObserver {
  private readonly inFlight = new Set<Promise<unknown>>();
  /** calls that failed (each is logged) */
  errors = 0;

  constructor(
    private readonly indexer: CollectionIndexer,
    private readonly log: Logger,
    private readonly syncQueue?: SyncRecomputeQueue,
  ) {}

  commitAccepted(did: string, commit: CommitEvent): void {
    this.syncQueue?.commitSeen(did, commit.rev);
    this.track(did, 'commit', () => this.indexer.applyCommit(indexedCommitOf(did, commit)));
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

/**
 * An account's status as the collection index reads it: a relay takedown
 * first, then the host's status (deactivated, suspended, deleted, …);
 * otherwise `active` (desynchronized and throttled accounts still have their
 * records). null when the relay has no such account.
 */
export function indexStatusOf(account: Pick<Account, 'status' | 'upstreamStatus'>): string {
  if (account.status === 'takendown') return 'takendown';
  if (account.upstreamStatus !== 'active') return account.upstreamStatus;
  return 'active';
}

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
