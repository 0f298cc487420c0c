// Throttle recovery (issue 18): when a host's account limit is raised or the
// host becomes trusted, the accounts that were throttled for being over the
// limit are let back in, and the writes they made meanwhile reach consumers.
//
// A throttled account's events are dropped (its status is not active), so
// simply marking it active again would leave a gap: its next commit's
// `since` would not follow the head stored here. Instead each released
// account becomes `desynchronized`, the state the validator already heals,
// and the host manager asks the validator to resync it at once
// (Validator.requestResync: fetch the repo, verify, emit `#sync` and
// `#account`, back to active), rate-limited and queued like every other
// resync (src/validate/resync.ts), so even an account that stays quiet is
// caught up. Without that hook it resyncs on its next event. Released accounts are the oldest throttled
// ones (by uid), as many as the new limit leaves room for (all of them for a
// trusted host). Bounded: at most `maxPerRun` accounts per call; the rest
// stay throttled until the next limit change or the next call.
//
// releaseThrottledHost is what the host manager runs after an operator
// raised a host's account limit or trusted it: the release above, its
// metric and log line, and the immediate resyncs (at most
// RESYNC_NOW_PER_RELEASE per release).
import type { Logger } from '../log.ts';
import type { Host, MetadataStore } from '../store/metadata-store.ts';
import type { IngestMetrics } from './metrics.ts';

export interface ThrottleRecoveryResult {
  /** Accounts moved from throttled to desynchronized (the caller queues their resyncs). */
  released: string[];
  /** Accounts still throttled afterwards (not counted beyond the bound walked). */
  stillThrottled: number;
}

const PAGE = 1000;

/**
 * Releases throttled accounts of `host` that now fit under `limit`
 * (Infinity: a trusted host, all of them). `host.accountCount` counts every
 * account of the host, throttled ones included.
 */
export async function releaseThrottledAccounts(
  store: Pick<MetadataStore, 'listThrottledAccounts' | 'setAccountStatus' | 'getAccountByUid'>,
  host: Pick<Host, 'id' | 'accountCount'>,
  limit: number,
  maxPerRun = 10_000,
): Promise<ThrottleRecoveryResult> {
  const throttled: { uid: number; did: string }[] = [];
  let after: number | undefined;
  // walk at most what may be released plus one page, to know how many are throttled
  while (throttled.length <= maxPerRun + PAGE) {
    const page = await store.listThrottledAccounts(host.id, { after, limit: PAGE });
    for (const a of page) throttled.push({ uid: a.uid, did: a.did });
    if (page.length < PAGE) break;
    after = page[page.length - 1].uid;
  }
  const admitted = Math.max(0, host.accountCount - throttled.length);
  const room = limit === Number.POSITIVE_INFINITY ? throttled.length : Math.max(0, limit - admitted);
  const released: string[] = [];
  for (const a of throttled.slice(0, Math.min(room, maxPerRun))) {
    // re-read: a takedown made since the listing must not be overwritten
    if ((await store.getAccountByUid(a.uid))?.status !== 'throttled') continue;
    const updated = await store.setAccountStatus(a.uid, 'desynchronized');
    if (updated) released.push(a.did);
  }
  return { released, stillThrottled: throttled.length - released.length };
}

/** Released throttled accounts resynced at once per release (see releaseThrottledHost). */
const RESYNC_NOW_PER_RELEASE = 500;

export interface ReleaseThrottledHostOptions {
  store: MetadataStore;
  metrics: Pick<IngestMetrics, 'throttleReleased'>;
  log: Logger;
  /** The account limit the validation stage applies to the host now. */
  accountLimit: (host: Host) => number;
  /** Starts a resync of an account now (Validator.requestResync); without it, on its next event. */
  resyncNow: ((did: string) => Promise<unknown>) | undefined;
}

/**
 * Throttled accounts that fit under the host's limit now are released
 * (releaseThrottledAccounts) and resynced at once through the validator's
 * rate-limited resync queue (resyncNow; without it, on their next event).
 */
export async function releaseThrottledHost(o: ReleaseThrottledHostOptions, hostId: number): Promise<void> {
  const host = await o.store.getHost(hostId);
  if (!host) return;
  const { released, stillThrottled } = await releaseThrottledAccounts(o.store, host, o.accountLimit(host));
  if (released.length === 0) return;
  o.metrics.throttleReleased.inc(released.length);
  const resyncNow = o.resyncNow;
  o.log.info(
    { host: host.hostname, released: released.length, stillThrottled },
    resyncNow
      ? 'throttled accounts released: resyncs queued'
      : 'throttled accounts released: each resyncs on its next event',
  );
  if (!resyncNow) return;
  // not awaited: the resync queue paces them; a failure leaves the account
  // desynchronized, healed on its next event like any failed resync. At
  // most RESYNC_NOW_PER_RELEASE at once (the host's resync queue is bounded
  // too); the rest stay desynchronized until their next event or the
  // reconciliation sweep (reconcile.ts) resyncs them.
  for (const did of released.slice(0, RESYNC_NOW_PER_RELEASE)) {
    resyncNow(did).catch((err: unknown) =>
      o.log.warn({ did, err }, 'resync of a released account not queued'),
    );
  }
}
