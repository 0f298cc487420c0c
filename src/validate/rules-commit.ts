// The stateful rules of the events that carry a repo's commit, #commit and
// #sync (the Validator dispatches a repo's current job here; the stateless
// checks already ran in a worker, verify-frame.ts): account context, status,
// signature with the current key, rev against the repo's head, and for
// #commit the sync 1.1 chain (since / prevData / inversion) — a break marks
// the account desynchronized and queues a resync (rules-resync.ts) unless
// lenientSync. A passing event stages the new head (head-writer.ts).
//
// processCommit is the relay's hottest code: in the steady state
// (accountContextNow answers) it awaits only the worker's verdict.
import { isActive } from '../accounts/status.ts';
import type { AppendEvent } from '../eventlog/types.ts';
import { EventKind } from '../eventlog/types.ts';
import type { InboundFrame } from '../ingest/frame-sink.ts';
import { seqWriter } from '../protocol/frames.ts';
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
import type { ChainFailure } from './metrics.ts';
import { accountEvent } from './rules-account.ts';
import type { VerifyResult } from './verify-frame.ts';

export async function processCommit(cx: RuleContext, job: Job, q: RepoQueue): Promise<Decision> {
  const frame = job.frame as InboundFrame;
  // its verification waits for a DID resolution (the network): other repos go on meanwhile
  if (job.awaitingIdentity) cx.order.park(q);
  const r = await (job.verified as Promise<VerifyResult>);
  // moved to the worker and back (pool.ts): its buffer is ours alone, so the
  // relay seq is written into it in place (seqWriter)
  if (r.frame) frame.frame = r.frame;
  if (!r.ok) return drop(r.reason, r.detail);
  const ctx = cx.accounts.accountContextNow(job, q) ?? (await cx.accounts.accountContext(job, q));
  if (isDecision(ctx)) return ctx;
  const { account } = ctx;
  if (account.status === 'desynchronized') {
    cx.resyncs.maybeSchedule(q);
    return drop('desynchronized', 'account awaits a resync');
  }
  if (!isActive(account))
    return drop('inactive-account', `status ${account.status}/${account.upstreamStatus}`);
  if (r.sig !== 'ok') {
    const sigErr = await cx.accounts.checkCommitSignature(r, ctx, q, job.verifyKey);
    if (sigErr) return sigErr;
  }
  const head = cx.heads.current(account);
  if (head && r.rev <= head.rev) return drop('rev-not-newer', `rev ${r.rev} <= stored ${head.rev}`);

  const breaks: ChainFailure[] = [];
  if (r.proof !== 'ok') breaks.push('inversion');
  if (head) {
    if (r.since !== head.rev) breaks.push('since');
    if (r.prevData === null) cx.metrics.event('missing-prev-data');
    else if (r.prevData !== head.dataCid) breaks.push('prev-data');
  }
  if (breaks.length > 0) {
    const lenient = cx.settings.lenientSync;
    for (const b of breaks) cx.metrics.chainFailure(b, lenient);
    const detail = `sync 1.1 chain broken (${breaks.join(', ')}): since ${r.since}, stored rev ${head?.rev ?? 'none'}${r.proofDetail ? `; ${r.proofDetail}` : ''}`;
    if (lenient) {
      cx.log.warn(
        { did: q.did, host: frame.hostname, breaks, rev: r.rev },
        'sync 1.1 check failed (lenient: passed)',
      );
    } else {
      await storedAfterEarlierEvents(cx, q);
      const updated = (await cx.store.setAccountStatus(account.uid, 'desynchronized')) ?? account;
      cx.resyncs.forget(q.did);
      q.resyncPending = true;
      cx.log.info(
        { did: q.did, host: frame.hostname, breaks },
        'chain break: account desynchronized, resync queued',
      );
      return drop('chain-break', detail, [accountEvent(updated, q.did, nowIso(cx))]);
    }
  }
  const write = cx.heads.stage(account, { rev: r.rev, commitCid: r.commitCid, dataCid: r.dataCid }, false);
  return {
    events: [
      {
        kind: EventKind.commit,
        uid: account.uid,
        frame: seqWriter(frame.frame, frame.seqSpan, r.frame !== undefined),
        // what the worker learned, so the collection index needs no decode
        meta: {
          type: '#commit',
          did: q.did,
          rev: r.rev,
          collections: r.collections ?? { created: [], gone: [], unknown: [], decided: 0 },
        },
      },
    ],
    write,
  };
}

export async function processSync(cx: RuleContext, job: Job, q: RepoQueue): Promise<Decision> {
  const frame = job.frame as InboundFrame;
  // its verification waits for a DID resolution (the network): other repos go on meanwhile
  if (job.awaitingIdentity) cx.order.park(q);
  const r = await (job.verified as Promise<VerifyResult>);
  // moved to the worker and back (pool.ts): its buffer is ours alone, so the
  // relay seq is written into it in place (seqWriter)
  if (r.frame) frame.frame = r.frame;
  if (!r.ok) return drop(r.reason, r.detail);
  const ctx = await cx.accounts.accountContext(job, q);
  if (isDecision(ctx)) return ctx;
  let { account } = ctx;
  const healing = account.status === 'desynchronized';
  if ((account.status !== 'active' && !healing) || account.upstreamStatus !== 'active') {
    return drop('inactive-account', `status ${account.status}/${account.upstreamStatus}`);
  }
  const sigErr = await cx.accounts.checkCommitSignature(r, ctx, q, job.verifyKey);
  if (sigErr) return sigErr;
  const head = cx.heads.current(account);
  if (head && r.rev < head.rev) return drop('rev-not-newer', `rev ${r.rev} < stored ${head.rev}`);
  const write = cx.heads.stage(account, { rev: r.rev, commitCid: r.commitCid, dataCid: r.dataCid }, true);
  const events: AppendEvent[] = [
    {
      kind: EventKind.sync,
      uid: account.uid,
      frame: seqWriter(frame.frame, frame.seqSpan, r.frame !== undefined),
      meta: { type: '#sync', did: q.did, rev: r.rev },
    },
  ];
  if (healing) {
    q.resyncPending = false;
    account = (await cx.store.setAccountStatus(account.uid, 'active')) ?? account;
    events.push(accountEvent(account, q.did, nowIso(cx)));
  }
  return { events, write };
}
