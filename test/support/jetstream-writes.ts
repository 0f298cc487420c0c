// Test support for the Jetstream tests (imported by tests only): writes
// records through the simulated network's hosts and keeps the record of
// every write (did, operation, collection, rkey, record), which is what a
// Jetstream subscriber must receive, filtered.
import type { SimNetwork } from '../../sim/network.ts';
import type { RepoWrite } from '../../sim/repo.ts';

export interface Written {
  did: string;
  operation: string;
  collection: string;
  rkey: string;
  record?: Record<string, unknown>;
}

/** A Jetstream commit event as it arrives (the fields the tests compare). */
export interface JetCommitEvent {
  did: string;
  time_us: number;
  kind: string;
  commit?: {
    operation: string;
    collection: string;
    rkey: string;
    record?: unknown;
    cid?: string;
    rev?: string;
  };
}

/** The operation of a Jetstream commit event, shaped like a Written. */
export function writtenOf(e: JetCommitEvent): Written {
  const c = e.commit!;
  return {
    did: e.did,
    operation: c.operation,
    collection: c.collection,
    rkey: c.rkey,
    ...(c.record ? { record: c.record as Record<string, unknown> } : {}),
  };
}

/**
 * Per account, in order: hosts stream concurrently, so the relay's order
 * interleaves accounts of different hosts freely but keeps each account's.
 */
export function perDid(list: readonly Written[]): Record<string, Written[]> {
  const out: Record<string, Written[]> = {};
  for (const w of list) {
    out[w.did] ??= [];
    out[w.did].push(w);
  }
  return out;
}

export class WriteRecorder {
  readonly written: Written[] = [];
  private rk = 0;
  private readonly lastPost = new Map<string, string>();

  constructor(
    private readonly net: SimNetwork,
    readonly dids: readonly string[],
  ) {}

  /**
   * Per round and account, one commit: a post and a follow created and (from
   * the second round of a call on) the account's previous post deleted.
   */
  writeSome(rounds: number): Written[] {
    const from = this.written.length;
    for (let i = 0; i < rounds; i++) {
      for (const did of this.dids) {
        const rkey = `3k${String(this.rk++).padStart(11, 'a')}`;
        const createdAt = new Date(0).toISOString();
        const writes: RepoWrite[] = [
          {
            action: 'create',
            collection: 'app.bsky.feed.post',
            rkey,
            record: { $type: 'app.bsky.feed.post', text: `post ${rkey} by ${did}`, createdAt },
          },
          {
            action: 'create',
            collection: 'app.bsky.graph.follow',
            rkey: `${rkey}f`,
            record: { $type: 'app.bsky.graph.follow', subject: this.dids[0], createdAt },
          },
        ];
        const previous = this.lastPost.get(did);
        if (i > 0 && previous)
          writes.push({ action: 'delete', collection: 'app.bsky.feed.post', rkey: previous });
        this.lastPost.set(did, rkey);
        this.net.hostOf(did).writeRecords(did, writes);
        for (const w of writes)
          this.written.push({
            did,
            operation: w.action,
            collection: w.collection,
            rkey: w.rkey,
            ...(w.record ? { record: w.record } : {}),
          });
      }
    }
    return this.written.slice(from);
  }
}
