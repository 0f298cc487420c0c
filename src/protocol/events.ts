// Typed bodies of com.atproto.sync.subscribeRepos messages and shape checks
// for them. A decoded frame body is `Record<string, unknown>`; parseEventBody
// checks field presence and types per the lexicon (required/optional/nullable,
// cid-link fields are `Cid`, bytes are Uint8Array, size limits) and returns a
// typed event. Unknown and deprecated message types are results, not errors,
// so the caller can count and skip them without a try/catch on the hot path;
// a known type with a bad shape throws EventShapeError. Unknown fields are
// ignored (the lexicon may grow).
//
// Every string the relay copies into its own frames or logs is bounded here
// (issue 12: any crawled host may be hostile): DIDs are checked with the DID
// syntax (at most 2 KB); #identity and #account `time` is a full atproto
// datetime (at most 64 chars) because the relay re-encodes it into frames of
// its own; #commit and #sync `time` is only capped at 64 chars (the frame is
// forwarded as sent); handle at most 253 chars (its syntax and verification
// are the validator's), status at most 64, #info text capped. Error messages
// never quote the offending value. This file also holds the structural limits
// ingest checks on every frame before anything decodes it (frame-check.ts).
import { type Cid, isCid } from './cid.ts';
import { DATETIME_MAX, DID_MAX, HANDLE_MAX, isValidDatetime, isValidDid } from './syntax.ts';

/** Lexicon limits: `#commit.ops` maxLength and `#commit.blocks` / `#sync.blocks` maxLength. */
export const MAX_COMMIT_OPS = 200;
export const MAX_COMMIT_BLOCKS_BYTES = 2_000_000;
export const MAX_SYNC_BLOCKS_BYTES = 10_000;

// --- structural limits of an upstream frame (checked by src/ingest/frame-check.ts)

/** The upstream message size limit (atproto event-stream: 5,000,000 bytes). */
export const MAX_FRAME_BYTES = 5_000_000;
/** The header is `{op, t}` and nothing else; it must end within this many bytes. */
export const MAX_FRAME_HEADER_BYTES = 1024;
/** Longest message type name `t` in a header. */
export const MAX_FRAME_TYPE_BYTES = 64;
/**
 * Longest top-level key of an event body (the lexicon's are at most 8 bytes;
 * unknown fields are allowed, so there is room for the lexicon to grow).
 * Keys of nested values are bounded only by the item and depth limits.
 */
export const MAX_FRAME_KEY_BYTES = 256;
/**
 * Largest frame of the types that are small by nature: #identity, #account,
 * #sync (blocks at most 10,000 bytes), #info and error frames. Only #commit
 * may use the whole MAX_FRAME_BYTES (its blocks may be 2 MB).
 */
export const MAX_SMALL_FRAME_BYTES = 64 * 1024;
/**
 * Deepest nesting of arrays, maps and CID tags in an event body. The deepest
 * lexicon shape is #commit: body map → ops array → op map → CID tag = 4, so
 * every real frame passes with room for the lexicon to grow; records are in
 * the `blocks` CAR (bytes), not in the body's tree.
 */
export const MAX_EVENT_DEPTH = 8;
/**
 * Most CBOR data items in an event body. A lexicon-maximal #commit (200 ops
 * of 11 items each, ~25 top-level items) is about 2,300, plus 2 per blob.
 */
export const MAX_EVENT_ITEMS = 20_000;

// --- bounds on the strings the relay relays or logs

export const MAX_DID_LENGTH = DID_MAX;
export const MAX_HANDLE_LENGTH = HANDLE_MAX;
export const MAX_TIME_LENGTH = DATETIME_MAX;
/** Longest rev and since (TIDs are 13 chars; checked as TIDs by validation). */
export const MAX_REV_LENGTH = 64;
/** Longest op path: an NSID (at most 317 chars), "/", a record key (at most 512). */
export const MAX_OP_PATH_LENGTH = 1024;
/** Longest #account status (known values are at most 14 chars; the set is open). */
export const MAX_STATUS_LENGTH = 64;
/** Longest #info name and message, and error frame name and message, accepted or logged. */
export const MAX_INFO_NAME_LENGTH = 128;
export const MAX_INFO_MESSAGE_LENGTH = 1024;

export type RepoOpAction = 'create' | 'update' | 'delete';

export interface RepoOp {
  action: RepoOpAction;
  /** `collection/rkey` */
  path: string;
  /** New record CID for create/update; null for delete. */
  cid: Cid | null;
  /** Previous record CID for update/delete (sync v1.1 inductive firehose). */
  prev?: Cid;
}

export interface CommitEvent {
  seq: number;
  /** Deprecated, always false in practice. */
  rebase: boolean;
  tooBig: boolean;
  repo: string;
  commit: Cid;
  rev: string;
  since: string | null;
  /** CAR file with the blocks of this diff. */
  blocks: Uint8Array;
  ops: RepoOp[];
  blobs: Cid[];
  /** MST root of the previous commit (sync v1.1). */
  prevData?: Cid;
  time: string;
}

export interface SyncEvent {
  seq: number;
  did: string;
  /** CAR file holding the signed commit block. */
  blocks: Uint8Array;
  rev: string;
  time: string;
}

export interface IdentityEvent {
  seq: number;
  did: string;
  time: string;
  handle?: string;
}

export const ACCOUNT_STATUSES = [
  'takendown',
  'suspended',
  'deleted',
  'deactivated',
  'desynchronized',
  'throttled',
] as const;
export type KnownAccountStatus = (typeof ACCOUNT_STATUSES)[number];

export interface AccountEvent {
  seq: number;
  did: string;
  time: string;
  active: boolean;
  /** One of ACCOUNT_STATUSES, or a newer value (the lexicon lists known values, not a closed set). */
  status?: string;
}

export interface InfoEvent {
  name: string;
  message?: string;
}

export type ParsedEvent =
  | { kind: 'commit'; event: CommitEvent }
  | { kind: 'sync'; event: SyncEvent }
  | { kind: 'identity'; event: IdentityEvent }
  | { kind: 'account'; event: AccountEvent }
  | { kind: 'info'; event: InfoEvent }
  /** `#handle`, `#migrate`, `#tombstone`: no longer emitted; relays drop them. */
  | { kind: 'deprecated'; type: string }
  | { kind: 'unknown'; type: string };

export type EventShapeReason = 'missing-field' | 'bad-field' | 'too-large';

export class EventShapeError extends Error {
  constructor(
    readonly reason: EventShapeReason,
    readonly type: string,
    readonly field: string,
    detail: string,
  ) {
    super(`invalid ${type} event: ${field} ${detail}`);
    this.name = 'EventShapeError';
  }
}

const DEPRECATED_TYPES = new Set(['#handle', '#migrate', '#tombstone']);

// Field readers: each throws EventShapeError naming the event type and field.
class Reader {
  constructor(
    readonly type: string,
    readonly body: Record<string, unknown>,
  ) {}

  private fail(reason: EventShapeReason, field: string, detail: string): never {
    throw new EventShapeError(reason, this.type, field, detail);
  }

  private present(field: string): unknown {
    const v = this.body[field];
    if (v === undefined) this.fail('missing-field', field, 'is required');
    return v;
  }

  seq(): number {
    const v = this.present('seq');
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      this.fail('bad-field', 'seq', 'must be a non-negative integer');
    }
    return v;
  }

  bool(field: string): boolean {
    const v = this.present(field);
    if (typeof v !== 'boolean') this.fail('bad-field', field, 'must be a boolean');
    return v;
  }

  string(field: string): string {
    const v = this.present(field);
    if (typeof v !== 'string' || v.length === 0) this.fail('bad-field', field, 'must be a non-empty string');
    return v;
  }

  /** A non-empty string of at most maxLength chars (the value is never quoted in the error). */
  cappedString(field: string, maxLength: number): string {
    const v = this.string(field);
    if (v.length > maxLength) this.fail('too-large', field, `is longer than ${maxLength} chars`);
    return v;
  }

  optionalString(field: string, maxLength: number): string | undefined {
    const v = this.body[field];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') this.fail('bad-field', field, 'must be a string');
    if (v.length > maxLength) this.fail('too-large', field, `is longer than ${maxLength} chars`);
    return v;
  }

  did(field: string): string {
    const v = this.string(field);
    if (!isValidDid(v))
      this.fail('bad-field', field, `must be a DID (syntax, at most ${MAX_DID_LENGTH} chars)`);
    return v;
  }

  /** An atproto datetime (the relay copies it into frames of its own). */
  datetime(field: string): string {
    const v = this.string(field);
    if (!isValidDatetime(v)) {
      this.fail('bad-field', field, `must be an atproto datetime of at most ${MAX_TIME_LENGTH} chars`);
    }
    return v;
  }

  cid(field: string): Cid {
    const v = this.present(field);
    if (!isCid(v)) this.fail('bad-field', field, 'must be a CID link');
    return v;
  }

  optionalCid(field: string): Cid | undefined {
    const v = this.body[field];
    if (v === undefined) return undefined;
    if (!isCid(v)) this.fail('bad-field', field, 'must be a CID link');
    return v;
  }

  bytes(field: string, maxLength: number): Uint8Array {
    const v = this.present(field);
    if (!(v instanceof Uint8Array)) this.fail('bad-field', field, 'must be bytes');
    if (v.length > maxLength) this.fail('too-large', field, `exceeds ${maxLength} bytes`);
    return v;
  }

  array(field: string): unknown[] {
    const v = this.present(field);
    if (!Array.isArray(v)) this.fail('bad-field', field, 'must be an array');
    return v;
  }

  repoOp(v: unknown, i: number): RepoOp {
    const field = `ops[${i}]`;
    if (typeof v !== 'object' || v === null || Object.getPrototypeOf(v) !== Object.prototype) {
      this.fail('bad-field', field, 'must be an object');
    }
    const op = v as Record<string, unknown>;
    const { action, path, cid, prev } = op;
    if (action !== 'create' && action !== 'update' && action !== 'delete') {
      this.fail('bad-field', `${field}.action`, 'must be create, update or delete');
    }
    if (typeof path !== 'string' || path.length === 0)
      this.fail('bad-field', `${field}.path`, 'must be a string');
    if (path.length > MAX_OP_PATH_LENGTH) {
      this.fail('too-large', `${field}.path`, `is longer than ${MAX_OP_PATH_LENGTH} chars`);
    }
    if (cid === undefined) this.fail('missing-field', `${field}.cid`, 'is required');
    if (action === 'delete' ? cid !== null : !isCid(cid)) {
      this.fail('bad-field', `${field}.cid`, action === 'delete' ? 'must be null' : 'must be a CID link');
    }
    if (prev !== undefined && !isCid(prev)) this.fail('bad-field', `${field}.prev`, 'must be a CID link');
    const out: RepoOp = { action, path, cid: cid as Cid | null };
    if (prev !== undefined) out.prev = prev;
    return out;
  }
}

function parseCommit(r: Reader): CommitEvent {
  const since = r.body.since;
  if (since === undefined) throw new EventShapeError('missing-field', r.type, 'since', 'is required');
  if (since !== null && (typeof since !== 'string' || since.length === 0)) {
    throw new EventShapeError('bad-field', r.type, 'since', 'must be a string or null');
  }
  if (since !== null && since.length > MAX_REV_LENGTH) {
    throw new EventShapeError('too-large', r.type, 'since', `is longer than ${MAX_REV_LENGTH} chars`);
  }
  const rawOps = r.array('ops');
  if (rawOps.length > MAX_COMMIT_OPS) {
    throw new EventShapeError('too-large', r.type, 'ops', `has more than ${MAX_COMMIT_OPS} entries`);
  }
  const blobs = r.array('blobs');
  for (let i = 0; i < blobs.length; i++) {
    if (!isCid(blobs[i])) throw new EventShapeError('bad-field', r.type, `blobs[${i}]`, 'must be a CID link');
  }
  const event: CommitEvent = {
    seq: r.seq(),
    rebase: r.bool('rebase'),
    tooBig: r.bool('tooBig'),
    repo: r.did('repo'),
    commit: r.cid('commit'),
    rev: r.cappedString('rev', MAX_REV_LENGTH),
    since,
    blocks: r.bytes('blocks', MAX_COMMIT_BLOCKS_BYTES),
    ops: rawOps.map((op, i) => r.repoOp(op, i)),
    blobs: blobs as Cid[],
    time: r.cappedString('time', MAX_TIME_LENGTH),
  };
  const prevData = r.optionalCid('prevData');
  if (prevData) event.prevData = prevData;
  return event;
}

/**
 * Checks a decoded frame body against the message type `t` (e.g. `#commit`).
 * Throws EventShapeError for a known type with a bad shape.
 */
export function parseEventBody(t: string, body: Record<string, unknown>): ParsedEvent {
  const r = new Reader(t, body);
  switch (t) {
    case '#commit':
      return { kind: 'commit', event: parseCommit(r) };
    case '#sync':
      return {
        kind: 'sync',
        event: {
          seq: r.seq(),
          did: r.did('did'),
          blocks: r.bytes('blocks', MAX_SYNC_BLOCKS_BYTES),
          rev: r.cappedString('rev', MAX_REV_LENGTH),
          time: r.cappedString('time', MAX_TIME_LENGTH),
        },
      };
    case '#identity': {
      const event: IdentityEvent = { seq: r.seq(), did: r.did('did'), time: r.datetime('time') };
      const handle = r.optionalString('handle', MAX_HANDLE_LENGTH);
      if (handle !== undefined) event.handle = handle;
      return { kind: 'identity', event };
    }
    case '#account': {
      const event: AccountEvent = {
        seq: r.seq(),
        did: r.did('did'),
        time: r.datetime('time'),
        active: r.bool('active'),
      };
      const status = r.optionalString('status', MAX_STATUS_LENGTH);
      if (status !== undefined) event.status = status;
      return { kind: 'account', event };
    }
    case '#info': {
      const event: InfoEvent = { name: r.cappedString('name', MAX_INFO_NAME_LENGTH) };
      const message = r.optionalString('message', MAX_INFO_MESSAGE_LENGTH);
      if (message !== undefined) event.message = message;
      return { kind: 'info', event };
    }
    default:
      return { kind: DEPRECATED_TYPES.has(t) ? 'deprecated' : 'unknown', type: t };
  }
}

export function isKnownAccountStatus(s: string): s is KnownAccountStatus {
  return (ACCOUNT_STATUSES as readonly string[]).includes(s);
}
