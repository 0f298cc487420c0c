// The stateful rules of the events about an account rather than its repo,
// #identity and #account, and of the jobs other parts queue in the account's
// order: operator actions (takedown, reversal) and repairs (requestResync,
// applyUpstreamStatus). The Validator dispatches a repo's current job here;
// each returns the job's decision, which the order queue appends.
import { publishedStatus, statusOfPublished, upstreamStatusOf } from '../accounts/status.ts';
import type { AppendEvent } from '../eventlog/types.ts';
import { EventKind } from '../eventlog/types.ts';
import type { InboundFrame } from '../ingest/frame-sink.ts';
import type { AccountEvent, IdentityEvent } from '../protocol/events.ts';
import { rewriteSeq } from '../protocol/frames.ts';
import type { AtprotoIdentity } from '../protocol/identity/did-document.ts';
import { accountFrame, identityFrame } from '../protocol/relay-frames.ts';
import { isValidHandle, normalizeHandle } from '../protocol/syntax.ts';
import type { Account } from '../store/metadata-store.ts';
import { isDecision } from './account-context.ts';
import {
  type Decision,
  drop,
  type Job,
  nowIso,
  type RepoQueue,
  type RuleContext,
  storedAfterEarlierEvents,
} from './job.ts';

/** The relay's #account event for an account: its own published status, with the status as meta. */
export function accountEvent(account: Account, did: string, time: string): AppendEvent {
  const published = publishedStatus(account);
  return {
    kind: EventKind.account,
    uid: account.uid,
    frame: accountFrame(did, published, time),
    meta: { type: '#account', did, status: statusOfPublished(published) },
  };
}

export async function processIdentity(cx: RuleContext, job: Job, q: RepoQueue): Promise<Decision> {
  const ev = job.parsed as IdentityEvent;
  const frame = job.frame as InboundFrame;
  // The event says the identity changed: fetch it afresh (the cache keeps
  // the old one until the answer comes, and rate-limits refreshes per DID),
  // then check host authority with what came back. Nothing is purged on the
  // word of a host that may not be the account's.
  const ctx = await cx.accounts.accountContext(job, q, true);
  if (isDecision(ctx)) return ctx;
  const { account, identity } = ctx;
  if (account.status !== 'active' && account.status !== 'desynchronized') {
    return drop('inactive-account', `local status ${account.status}`);
  }
  let handle: string | undefined;
  if (ev.handle !== undefined) {
    if (await verifyHandle(cx, ev.handle, identity, q)) handle = normalizeHandle(ev.handle);
    else {
      cx.metrics.event('unverified-handle');
      cx.log.debug(
        { did: q.did, host: frame.hostname, handle: ev.handle },
        'handle not verified: passed without it',
      );
    }
  }
  const bytes = frame.frame;
  const out =
    handle !== undefined && handle === ev.handle
      ? (seq: number) => rewriteSeq(bytes, seq, frame.seqSpan)
      : identityFrame(q.did, ev.time, handle);
  return { events: [{ kind: EventKind.identity, uid: account.uid, frame: out }] };
}

/** Bidirectional: the DID document claims the handle and the handle resolves to the DID. */
async function verifyHandle(
  cx: RuleContext,
  handle: string,
  identity: AtprotoIdentity,
  q: RepoQueue,
): Promise<boolean> {
  if (!isValidHandle(handle)) return false;
  const h = normalizeHandle(handle);
  if (identity.handle !== h) return false;
  cx.order.park(q);
  try {
    return (await cx.handles.resolve(h)) === q.did;
  } catch {
    return false;
  }
}

export async function processAccount(cx: RuleContext, job: Job, q: RepoQueue): Promise<Decision> {
  const ev = job.parsed as AccountEvent;
  const ctx = await cx.accounts.accountContext(job, q);
  if (isDecision(ctx)) return ctx;
  let { account } = ctx;
  const upstream = upstreamStatusOf(ev.active, ev.status);
  if (account.upstreamStatus !== upstream) {
    await storedAfterEarlierEvents(cx, q);
    account = (await cx.store.setAccountUpstreamStatus(account.uid, upstream)) ?? account;
  }
  return { events: [accountEvent(account, q.did, ev.time)] };
}

export async function processAccountAction(cx: RuleContext, job: Job, q: RepoQueue): Promise<Decision> {
  const admin = job.admin as NonNullable<Job['admin']>;
  const account = await cx.store.getAccountByDid(q.did);
  if (!account) return { events: [] };
  const status = publishedStatus(account);
  const time = nowIso(cx);
  return {
    events: [
      {
        kind: EventKind.account,
        uid: account.uid,
        // the log calls this with the seq as it appends: the hide ends just before it
        frame: (seq) => {
          admin.seq = seq;
          return accountFrame(q.did, status, time)(seq);
        },
        meta: { type: '#account', did: q.did, status: statusOfPublished(status) },
      },
    ],
    takedown: { uid: account.uid, on: admin.action === 'takedown' },
  };
}

export async function processRepair(cx: RuleContext, job: Job, q: RepoQueue): Promise<Decision> {
  const repair = job.repair as NonNullable<Job['repair']>;
  let account = await cx.store.getAccountByDid(q.did);
  if (!account) {
    job.repairResult = 'ineligible';
    return { events: [] };
  }
  if (repair.kind === 'resync') {
    const eligible =
      account.upstreamStatus === 'active' &&
      (account.status === 'active' || account.status === 'desynchronized');
    if (!eligible) {
      job.repairResult = 'ineligible';
      return { events: [] };
    }
    if (cx.resyncs.triedRecently(q.did)) {
      job.repairResult = 'unchanged';
      return { events: [] };
    }
    if (account.status === 'active') {
      await storedAfterEarlierEvents(cx, q);
      await cx.store.setAccountStatus(account.uid, 'desynchronized');
    }
    q.resyncPending = true;
    job.repairResult = 'queued';
    return { events: [] };
  }
  if (account.upstreamStatus === repair.status) {
    job.repairResult = 'unchanged';
    return { events: [] };
  }
  const before = statusOfPublished(publishedStatus(account));
  await storedAfterEarlierEvents(cx, q);
  account = (await cx.store.setAccountUpstreamStatus(account.uid, repair.status)) ?? account;
  if (statusOfPublished(publishedStatus(account)) === before) {
    job.repairResult = 'unchanged';
    return { events: [] };
  }
  job.repairResult = 'emitted';
  return { events: [accountEvent(account, q.did, nowIso(cx))] };
}
