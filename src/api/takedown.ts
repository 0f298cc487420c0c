// Account takedown and its reversal, in the order that keeps the firehose
// consistent: (1) the metadata store records the takedown and sets the local
// status, so the pipeline drops the account's new events from here on; (2)
// the event log hides the account's events appended so far, so replay from an
// old cursor no longer serves them; (3) an `#account` event tells consumers
// (active false, status takendown). Reversal undoes (1) and (2) and emits
// `#account` with the account's upstream state. After each, the optional
// `onAccountStatus` hook hears the account's new effective status, so derived
// indexes (the collection index) hide or show the account without the API
// depending on them; a failing hook is ignored (the takedown stands).

import type { EventLog } from '../eventlog/types.ts';
import { EventKind } from '../eventlog/types.ts';
import { accountFrame } from '../protocol/relay-frames.ts';
import type { Account, MetadataStore } from '../store/metadata-store.ts';

export interface TakedownDeps {
  store: MetadataStore;
  eventLog: Pick<EventLog, 'append' | 'setTakedown'>;
  now?: () => Date;
  /** Told the account's effective status after a takedown (`takendown`) or its reversal. */
  onAccountStatus?: (did: string, status: string) => void | Promise<void>;
}

export interface TakedownOutcome {
  did: string;
  /** false when the DID is not (yet) a known account: the takedown is still recorded. */
  known: boolean;
  /** Relay seq of the emitted `#account` event (known accounts only). */
  seq?: number;
  account?: Account;
}

async function emitAccount(
  deps: TakedownDeps,
  account: Account,
  active: boolean,
  status: string | undefined,
): Promise<number> {
  const time = (deps.now?.() ?? new Date()).toISOString();
  const [seq] = await deps.eventLog.append([
    {
      kind: EventKind.account,
      uid: account.uid,
      frame: accountFrame(account.did, { active, status }, time),
    },
  ]);
  return seq;
}

async function notifyStatus(deps: TakedownDeps, did: string, status: string): Promise<void> {
  try {
    await deps.onAccountStatus?.(did, status);
  } catch {
    // derived state only; the hook logs its own failures
  }
}

export async function takeDown(deps: TakedownDeps, did: string, reason?: string): Promise<TakedownOutcome> {
  await deps.store.setTakedown(did, reason);
  const account = await deps.store.getAccountByDid(did);
  if (!account) {
    // a DID the relay has not crawled may still be in derived indexes (e.g. backfilled)
    await notifyStatus(deps, did, 'takendown');
    return { did, known: false };
  }
  await deps.eventLog.setTakedown(account.uid, true);
  const seq = await emitAccount(deps, account, false, 'takendown');
  await notifyStatus(deps, did, 'takendown');
  return { did, known: true, seq, account };
}

/** Returns undefined when the DID had no takedown. */
export async function reverseTakedown(deps: TakedownDeps, did: string): Promise<TakedownOutcome | undefined> {
  const removed = await deps.store.clearTakedown(did);
  if (!removed) return undefined;
  const account = await deps.store.getAccountByDid(did);
  if (!account) {
    await notifyStatus(deps, did, 'active');
    return { did, known: false };
  }
  await deps.eventLog.setTakedown(account.uid, false);
  const active = account.status === 'active' && account.upstreamStatus === 'active';
  const status = active ? undefined : account.status !== 'active' ? account.status : account.upstreamStatus;
  const seq = await emitAccount(deps, account, active, status);
  await notifyStatus(deps, did, status ?? 'active');
  return { did, known: true, seq, account };
}
