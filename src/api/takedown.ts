// Account takedown and its reversal, in the order that keeps the firehose
// consistent: (1) the metadata store records the takedown and sets the local
// status, so the pipeline drops the account's new events from here on; (2)
// the validation stage, the one writer of the event log, takes the action in
// the account's own order (Validator.accountAction): it hides the account's
// events up to just before its `#account` event — every event of the account
// decided before the takedown, whenever its append lands, so none can stay
// visible (issue 13) — and appends that `#account` (active false, status
// takendown). Reversal undoes (1), then the validator shows the events again
// and emits `#account` with the account's upstream state. Derived indexes
// (the collection index) follow that `#account` through the committed-event
// stream; for a DID the relay has no account for (it may still be in a
// derived index, e.g. from a backfill) the optional `onAccountStatus` hook
// tells them instead; a failing hook is ignored (the takedown stands).
import type { Account, MetadataStore } from '../store/metadata-store.ts';
import type { AccountAction } from '../validate/validator.ts';

/** Where operator actions on an account are taken in the account's order (the Validator). */
export interface AccountActions {
  accountAction(did: string, action: AccountAction): Promise<number | undefined>;
}

export interface TakedownDeps {
  store: MetadataStore;
  accounts: AccountActions;
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
  // the #account event tells derived state through the committed-event stream
  const seq = await deps.accounts.accountAction(did, 'takedown');
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
  const seq = await deps.accounts.accountAction(did, 'reverse-takedown');
  return { did, known: true, seq, account };
}
