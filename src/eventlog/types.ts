// The event log contract: what the relay pipeline (writer) and the firehose
// (readers) need from durable storage of the outbound stream. The embedded
// file log (file-log.ts) and the shared JetStream log (nats-log.ts, for
// several processes: docs/scale-out.md) implement it; both pass the same
// contract suite (test/support/eventlog-contract.ts). The firehose only uses this interface.
//
// Ordering model: the log is the relay's sequencer. `append` assigns each event
// the next relay seq synchronously, in call order; the returned promise resolves
// once the events are durable. `onDurable` listeners are called with the same
// records in seq order, in the same synchronous step that advances `head()`.
// That single rule (head and notification move together) is what lets a reader
// cut over from replay to live with no gap and no duplicate (follow.ts).

import type { CommitCollections } from '../protocol/commit-collections.ts';
import type { TimeChainPosition } from './time-index.ts';

/** Event kinds as stored in the record header; opaque to the log itself. */
export const EventKind = {
  commit: 1,
  sync: 2,
  identity: 3,
  account: 4,
  info: 5,
} as const;

/** Where an event came from: the upstream host (metadata-store id) and the event's seq there. */
export interface EventOrigin {
  hostId: number;
  seq: number;
}

/**
 * What validation learned about an event, carried in memory from the append
 * to the committed-event stream (committed.ts) so that no subscriber decodes
 * the frame again. Never stored: records read back from the log have none.
 */
export type EventMeta =
  | { type: '#commit'; did: string; rev: string; collections: CommitCollections }
  | {
      type: '#sync';
      did: string;
      rev: string;
      /** Set for the relay's own resync: the collections of the repo it fetched. */
      resync?: { collections: readonly string[] };
    }
  | { type: '#identity'; did: string }
  /** `status`: the account's effective status as this event publishes it (accounts/status.ts). */
  | { type: '#account'; did: string; status: string };

export interface AppendEvent {
  kind: number;
  /** Account uid (0 when the event is not tied to an account). */
  uid: number;
  /**
   * The complete wire frame, or a function building it once the seq is known.
   * A plain byte array must already carry the right seq (tests, tools).
   */
  frame: Uint8Array | ((seq: number) => Uint8Array);
  /** Optional record flags (bit field), stored as is. */
  flags?: number;
  /**
   * The upstream event this one relays (absent for events the relay makes
   * itself, e.g. a resync's #sync). Stored with the record so that, after a
   * crash, ingest can tell which re-received upstream events are already out.
   */
  origin?: EventOrigin;
  /** Passed to the durable listeners with the record, not stored (see EventMeta). */
  meta?: EventMeta;
}

export interface LogRecord {
  seq: number;
  kind: number;
  uid: number;
  flags: number;
  /** Milliseconds since the epoch when the record was appended. */
  time: number;
  /**
   * The record's time in microseconds, unique and increasing with the seq
   * (time-index.ts; Jetstream's time_us). Set on records handed to durable
   * listeners; readers of the log recompute it from a checkpoint.
   */
  timeUs?: number;
  /** The complete wire frame (header + body), seq already set. */
  frame: Uint8Array;
  /** The upstream event it relays, if any (see AppendEvent.origin). */
  origin?: EventOrigin;
  /** Only on records handed to durable listeners right after their append (see EventMeta). */
  meta?: EventMeta;
}

export interface ReadOptions {
  /** Stop after about this many frame bytes (at least one record is returned). */
  maxBytes?: number;
  /** Never return records with a seq above this (default: the durable head). */
  untilSeq?: number;
  /** Return records hidden by a takedown too (crash recovery needs every record). */
  includeTakenDown?: boolean;
}

export type DurableListener = (records: readonly LogRecord[]) => void;

/** The log's write health: `failing` while writes keep failing and are being retried. */
export interface WriteState {
  failing: boolean;
  /** The last write error while failing. */
  error?: Error;
  /** When the current failure began (ms since the epoch). */
  since?: number;
}

/** The part of the time index (time-index.ts) readers use to place a time cursor. */
export interface TimeIndexReader {
  /** Where to start reading for the first record with time_us ≥ timeUs; undefined: past the head, or nothing indexed. */
  seek(timeUs: number): TimeChainPosition | undefined;
  /** The first indexed record's position (undefined when nothing is indexed). */
  first(): TimeChainPosition | undefined;
  /** The time_us of record `seq` if it is a checkpoint (every segment's first record is). */
  checkpointAt(seq: number): number | undefined;
  /** The newest record's time_us (0 before any). */
  readonly headTimeUs: number;
}

export interface EventLog {
  /** seq ↔ time_us (time-index.ts); absent in logs that keep none. */
  readonly timeIndex?: TimeIndexReader;
  /**
   * Assigns seqs (strictly increasing, never reused) and resolves with them once
   * the events are durable. Rejects if the log is closed or the write fails.
   */
  append(events: readonly AppendEvent[]): Promise<number[]>;
  /**
   * Records with seq > `after`, in order, up to the durable head (or `untilSeq`),
   * skipping events hidden by a takedown. An empty result means caught up.
   */
  readFrom(after: number, opts?: ReadOptions): Promise<LogRecord[]>;
  /** Highest durable seq (0 when nothing was ever appended). */
  head(): number;
  /** Lowest seq still kept; head() + 1 when the log holds no events. */
  oldest(): number;
  /**
   * Hide (on) or show again (off) the events of an account: with `on`, those
   * up to `upToSeq` (default: every event appended so far). The hide applies
   * to reads at once; the promise resolves once it is stored.
   */
  setTakedown(uid: number, on: boolean, upToSeq?: number): Promise<void>;
  isTakenDown(uid: number, seq: number): boolean;
  /** Subscribe to durable records; returns an unsubscribe function. */
  onDurable(listener: DurableListener): () => void;
  /** Apply retention now (also runs on a timer); resolves with segments removed. */
  gc(): Promise<number>;
  /** Bytes on disk (all segments). */
  sizeBytes(): number;
  /** Flush what is pending, then release files. */
  close(): Promise<void>;
  /** Write health: failing writes are retried; nothing is skipped meanwhile. */
  getWriteState(): WriteState;
  /** Called on every change of the write state; returns an unsubscribe function. */
  onWriteState(listener: (state: WriteState) => void): () => void;
  /** Called once if the log gives up on writing (the process should exit); returns an unsubscribe function. */
  onFatal(listener: (err: Error) => void): () => void;
}

/** What the relay pipeline needs: the log seen as a sequencer (and the takedown hide, applied in order). */
export type Sequencer = Pick<EventLog, 'append' | 'head' | 'setTakedown'>;
