// Resync of a desynchronized repo, as the Validator runs it between two of
// the repo's jobs (runRepo: a chain break or a requestResync set
// resyncPending): the repo is parked (order-queue.ts), the head is fetched
// from its PDS through the resync queue (resync.ts: rate limit, per-host
// budget; repo-fetch.ts), staged as a reset (head-writer.ts), and a #sync
// plus the account's #account are decided as a relay-originated job. A failed
// resync leaves the account desynchronized; its next event, or a later
// request, tries again, at most once per resyncRetryMs (ResyncAttempts).
import type { AppendEvent } from '../eventlog/types.ts';
import { EventKind } from '../eventlog/types.ts';
import { syncFrame } from '../protocol/relay-frames.ts';
import { type Job, nowIso, type RepoQueue, type RuleContext } from './job.ts';
import { accountEvent } from './rules-account.ts';
import type { ValidationSettings } from './validator.ts';

/** Resync attempts remembered at most (lastResync). */
const MAX_TRACKED_RESYNCS = 100_000;

/** When each account was last tried, so that one is resynced at most once per retry interval. */
export class ResyncAttempts {
  /** DID → time of its last resync attempt, oldest first; bounded (note). */
  private readonly lastResync = new Map<string, number>();

  constructor(
    private readonly settings: Pick<ValidationSettings, 'resyncRetryMs'>,
    private readonly now: () => number,
  ) {}

  /**
   * Records a resync attempt. Attempts older than the retry interval hold
   * nothing back, so they are dropped (re-inserting keeps the map oldest
   * first, so that is a walk from the front); past MAX_TRACKED_RESYNCS the
   * oldest go too (such an account may retry a little early, still through
   * the resync queue's rate limit).
   */
  note(did: string): void {
    const now = this.now();
    this.lastResync.delete(did);
    for (const [d, t] of this.lastResync) {
      if (now - t < this.settings.resyncRetryMs && this.lastResync.size < MAX_TRACKED_RESYNCS) break;
      this.lastResync.delete(d);
    }
    this.lastResync.set(did, now);
  }

  /** The account's last attempt is less than the retry interval ago. */
  triedRecently(did: string): boolean {
    const last = this.lastResync.get(did);
    return last !== undefined && this.now() - last < this.settings.resyncRetryMs;
  }

  /** The account may be resynced at once (a chain break: the last attempt no longer counts). */
  forget(did: string): void {
    this.lastResync.delete(did);
  }

  /** Queues a resync of the repo after its current job unless one was tried too recently. */
  maybeSchedule(q: RepoQueue): void {
    if (!this.triedRecently(q.did)) q.resyncPending = true;
  }
}

/** Rebuilds the head of a desynchronized repo from its PDS, then emits #sync and the account's status. */
export async function resyncRepo(cx: RuleContext, q: RepoQueue): Promise<void> {
  q.resyncPending = false;
  cx.order.park(q);
  const did = q.did;
  cx.resyncs.note(did);
  try {
    const account = await cx.store.getAccountByDid(did);
    if (account?.status !== 'desynchronized') return;
    cx.metrics.resyncQueue.set(cx.resyncer.queued + 1);
    const identity = await cx.accounts.resolveIdentity(q, false);
    if (!identity.pdsEndpoint || !identity.signingKey) throw new Error('DID document lacks a PDS or key');
    const fetched = await cx.resyncer.fetchHead(did, identity.pdsEndpoint, identity.signingKey);
    cx.metrics.resyncQueue.set(cx.resyncer.queued);
    const head = cx.heads.current(account);
    if (head && fetched.rev < head.rev)
      throw new Error(`PDS repo rev ${fetched.rev} is older than ${head.rev}`);
    const write = cx.heads.stage(
      account,
      { rev: fetched.rev, commitCid: fetched.commitCid.$link, dataCid: fetched.dataCid.$link },
      true,
    );
    const updated = (await cx.store.setAccountStatus(account.uid, 'active')) ?? account;
    const time = nowIso(cx);
    const events: AppendEvent[] = [
      {
        kind: EventKind.sync,
        uid: account.uid,
        frame: syncFrame(did, fetched.rev, fetched.commitCid, fetched.commitBlock, time),
        meta: { type: '#sync', did, rev: fetched.rev, resync: { collections: fetched.collections } },
      },
      accountEvent(updated, did, time),
    ];
    cx.metrics.resync(true);
    cx.log.info({ did, rev: fetched.rev }, 'repo resynced');
    const job: Job = {
      frame: null,
      type: '#sync',
      did,
      gen: 0,
      inOrder: false,
      verifyKey: undefined,
      awaitingIdentity: false,
      decision: null,
      resolve: () => {},
      reject: (err) => cx.log.error({ did, err }, 'resync events not appended'),
    };
    cx.finish(job, { events, write });
  } catch (err) {
    cx.metrics.resync(false);
    cx.metrics.resyncQueue.set(cx.resyncer.queued);
    cx.log.warn({ did, err: (err as Error).message }, 'resync failed; account stays desynchronized');
  }
}
