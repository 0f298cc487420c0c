// Hooks for modules that keep derived state in step with what the relay
// publishes (the collection index). The validator collects a note per
// appended event while deciding it and hands the notes to the observer only
// after the append is durable, in log order — never for a dropped event, never
// before the event is in the log — so derived state can lag the firehose but
// never run ahead of it. An observer error (thrown or rejected) is logged and
// otherwise ignored: derived state must never hold up or break ingest.
import type { Logger } from '../log.ts';
import { type CommitEvent, parseEventBody } from '../protocol/events.ts';
import { decodeFrame } from '../protocol/frames.ts';

export interface ValidatorObserver {
  /** A `#commit` was appended (parsed from the upstream frame: ops, blocks CAR bytes, commit CID). */
  commitAccepted?(did: string, commit: CommitEvent): void | Promise<void>;
  /**
   * The relay's effective status of an account, each time it emits `#account`:
   * `active`, or the local status (takendown, throttled, desynchronized) if
   * not active, else the upstream one (deactivated, suspended, deleted, …).
   */
  accountStatus?(did: string, status: string): void | Promise<void>;
  /** A resync replaced the repo's head with the fetched repo (its rev and collection names). */
  repoResynced?(did: string, repo: ResyncedRepo): void | Promise<void>;
}

/**
 * What a resync read from the fetched repo, for derived state: the repo was
 * read in a worker (repo-fetch.ts) and only this came back.
 */
export interface ResyncedRepo {
  rev: string;
  /** Distinct collection names of the repo's MST, sorted. */
  collections: readonly string[];
}

export type ObserverNote =
  | { kind: 'commit'; did: string; frame: Uint8Array }
  | { kind: 'status'; did: string; status: string }
  /** `car`: what was read from the fetched repo CAR (not the CAR; the name predates that). */
  | { kind: 'resynced'; did: string; car: ResyncedRepo };

/** The status string an `#account` event published as `{active, status}` stands for. */
export function effectiveStatus(published: { active: boolean; status?: string }): string {
  return published.active ? 'active' : (published.status ?? 'deactivated');
}

function guard(log: Logger, note: ObserverNote, run: () => void | Promise<void>): void {
  const fail = (err: unknown) =>
    log.error({ err, did: note.did, note: note.kind }, 'validator observer failed');
  try {
    const out = run();
    if (out && typeof (out as Promise<void>).then === 'function') (out as Promise<void>).catch(fail);
  } catch (err) {
    fail(err);
  }
}

/** Delivers notes of durably appended events, in order; never throws. */
export function notifyObserver(
  observer: ValidatorObserver,
  notes: readonly ObserverNote[],
  log: Logger,
): void {
  for (const note of notes) {
    switch (note.kind) {
      case 'commit': {
        const cb = observer.commitAccepted;
        if (!cb) break;
        guard(log, note, () => {
          const parsed = parseEventBody('#commit', decodeFrame(note.frame).body);
          if (parsed.kind !== 'commit') throw new Error('not a #commit frame');
          return cb.call(observer, note.did, parsed.event);
        });
        break;
      }
      case 'status': {
        const cb = observer.accountStatus;
        if (cb) guard(log, note, () => cb.call(observer, note.did, note.status));
        break;
      }
      case 'resynced': {
        const cb = observer.repoResynced;
        if (cb) guard(log, note, () => cb.call(observer, note.did, note.car));
        break;
      }
    }
  }
}
