// What the validator's parts pass between them (validator.ts is the
// overview): a job (one frame, operator action or repair in its account's
// queue), the per-DID queue it waits in, the decision a per-type rule
// (rules-*.ts) makes for it, which the order queue (order-queue.ts) appends,
// and the context those rules run in (built once by the Validator).
import type { AppendEvent } from '../eventlog/types.ts';
import type { InboundFrame } from '../ingest/frame-sink.ts';
import type { Logger } from '../log.ts';
import type { AccountEvent, IdentityEvent } from '../protocol/events.ts';
import type { PublicKey } from '../protocol/keys.ts';
import type { AccountStatus, MetadataStore } from '../store/metadata-store.ts';
import type { AccountResolver } from './account-context.ts';
import type { HeadWriter, StagedHead } from './head-writer.ts';
import type { ValidationMetrics } from './metrics.ts';
import type { OrderQueue } from './order-queue.ts';
import type { DropReason } from './reasons.ts';
import type { Resyncer } from './resync.ts';
import type { ResyncAttempts } from './rules-resync.ts';
import type { HandleLookup, ValidationSettings } from './validator.ts';
import type { VerifyResult } from './verify-frame.ts';

/** Operator actions on an account, taken in the account's order (Validator.accountAction). */
export type AccountAction = 'takedown' | 'reverse-takedown';

/**
 * What a repair did: `queued` (a resync was queued; an #account was emitted),
 * `unchanged` (nothing to do: already so, or a resync tried too recently),
 * `ineligible` (unknown account, or one whose status rules it out).
 */
export type RepairResult = 'queued' | 'emitted' | 'unchanged' | 'ineligible';

export interface Decision {
  events: AppendEvent[];
  drop?: { reason: DropReason; detail: string };
  /** Repo head to write to the store once the events are durable. */
  write?: StagedHead;
  /** Hide (on) or show again the account's events, right as this decision's events are appended. */
  takedown?: { uid: number; on: boolean };
}

export interface Job {
  /** null for relay-originated events (resync). */
  frame: InboundFrame | null;
  type: string;
  did: string;
  verified?: Promise<VerifyResult>;
  /** The signing key `verified`'s worker checked the signature with (none: it could not). */
  verifyKey: PublicKey | undefined;
  /** `verified` waits for the DID to resolve before it goes to a worker (admission.ts). */
  awaitingIdentity: boolean;
  parsed?: IdentityEvent | AccountEvent;
  /** Order-queue generation: an entry is live only while its gen equals the job's. */
  gen: number;
  inOrder: boolean;
  decision: Decision | null;
  /** An operator action (accountAction) instead of a frame; `seq` is its #account event's, once appended. */
  admin?: { action: AccountAction; seq?: number };
  /** A repair (requestResync, applyUpstreamStatus) instead of a frame; `result` is what it did. */
  repair?: { kind: 'resync' } | { kind: 'upstream-status'; status: AccountStatus };
  repairResult?: RepairResult;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export interface RepoQueue {
  did: string;
  jobs: Job[];
  parked: boolean;
  resyncPending: boolean;
  /** When this repo's DID resolution began failing transiently (cleared by a success): one deadline for all its events. */
  identityFailingSince?: number;
}

export function drop(reason: DropReason, detail: string, events: AppendEvent[] = []): Decision {
  return { events, drop: { reason, detail } };
}

/** What the per-type rules (rules-*.ts) work with: the Validator's parts, shared, one object for its lifetime. */
export interface RuleContext {
  store: MetadataStore;
  settings: ValidationSettings;
  metrics: ValidationMetrics;
  log: Logger;
  now: () => number;
  accounts: AccountResolver;
  heads: HeadWriter;
  order: OrderQueue;
  handles: HandleLookup;
  resyncer: Resyncer;
  resyncs: ResyncAttempts;
  /** The Validator's finish: a relay-originated job (resync) gets its decision. */
  finish: (job: Job, decision: Decision) => void;
}

/**
 * Waits, with the repo parked, until every event decided before now is
 * durable in the log and its repo head is in the store (rejects if the last
 * append failed). A rule calls it before writing account state at decision
 * time (an upstream status, desynchronized), so that the stored account is
 * never ahead of the log: after a crash, ingest receives again the frames
 * above the stored cursor, and if a status from a later frame were stored
 * while an earlier commit of the repo was not yet in the log, that commit
 * would be judged by the later status (dropped as inactive) and lost; the
 * repo's head would then lag, and its next commit would break the chain.
 */
export async function storedAfterEarlierEvents(cx: RuleContext, q: RepoQueue): Promise<void> {
  cx.order.park(q);
  cx.metrics.accountWritesWaiting++;
  try {
    await cx.order.settled();
    await cx.heads.barrier();
  } finally {
    cx.metrics.accountWritesWaiting--;
  }
}

export function nowIso(cx: RuleContext): string {
  return new Date(cx.now()).toISOString();
}
