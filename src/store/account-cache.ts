// Bounded LRU of accounts by DID, in front of the per-event account lookup
// (src/lru.ts: O(1) hits and evictions at any size; the Map idiom it replaced
// cost ~23 µs per eviction at the default 100,000 entries).
// The store refreshes entries from the rows its own writes return, so cached
// accounts stay exact as long as this process is the only writer.
//
// A miss loads from the database asynchronously; a write to the same DID that
// lands while that load is in flight marks the load stale, so the older row it
// returns is handed to its callers but never cached over the newer one.
// Concurrent misses for one DID share a single query.
import { Lru } from '../lru.ts';
import type { Account, RepoHead } from './metadata-store.ts';

interface Load {
  promise: Promise<Account | undefined>;
  stale: boolean;
}

export class AccountCache {
  private readonly entries: Lru<string, Account>;
  private readonly loads = new Map<string, Load>();
  hits = 0;
  misses = 0;

  constructor(readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 0)
      throw new Error(`invalid cache capacity: ${capacity}`);
    this.entries = new Lru(capacity);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Cached value, or the result of `load` (cached unless a write overtook it). */
  get(did: string, load: (did: string) => Promise<Account | undefined>): Promise<Account | undefined> {
    const hit = this.entries.get(did);
    if (hit !== undefined) {
      this.hits++;
      return Promise.resolve(hit);
    }
    this.misses++;
    const pending = this.loads.get(did);
    if (pending) return pending.promise;
    const entry: Load = { promise: Promise.resolve(undefined), stale: false };
    entry.promise = load(did).then(
      (account) => {
        if (this.loads.get(did) === entry) this.loads.delete(did);
        if (account && !entry.stale) this.put(account);
        return account;
      },
      (err: unknown) => {
        if (this.loads.get(did) === entry) this.loads.delete(did);
        throw err;
      },
    );
    this.loads.set(did, entry);
    return entry.promise;
  }

  /** The cached account (a use: it becomes the most recent), without loading on a miss. */
  peek(did: string): Account | undefined {
    const hit = this.entries.get(did);
    if (hit === undefined) return undefined;
    this.hits++;
    return hit;
  }

  /** Inserts or replaces, evicting the least recently used entry when full. */
  put(account: Account): void {
    this.entries.set(account.did, account);
  }

  /** After a write: replace the entry if cached, and stale any load in flight. */
  refresh(account: Account): void {
    const load = this.loads.get(account.did);
    if (load) load.stale = true;
    this.entries.replace(account.did, account);
  }

  /** After a head write: the cached account (if it is this uid) gets the new head; a load in flight is stale. */
  patchHead(did: string, uid: number, head: RepoHead): void {
    const load = this.loads.get(did);
    if (load) load.stale = true;
    const cur = this.entries.peek(did);
    if (cur && cur.uid === uid) this.entries.replace(did, { ...cur, head });
  }

  /** After a write to an account known only by uid (a scan: not for hot paths). */
  invalidateUid(uid: number): void {
    for (const [did, a] of this.entries.entries()) {
      if (a.uid === uid) {
        this.invalidate(did);
        return;
      }
    }
  }

  /** After a write whose resulting row is unknown. */
  invalidate(did: string): void {
    const load = this.loads.get(did);
    if (load) load.stale = true;
    this.entries.delete(did);
  }

  clear(): void {
    for (const load of this.loads.values()) load.stale = true;
    this.entries.clear();
  }
}
