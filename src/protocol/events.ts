// Typed bodies of com.atproto.sync.subscribeRepos messages and shape checks
// for them. A decoded frame body is `Record<string, unknown>`; parseEventBody
// checks field presence and types per the lexicon (required/optional/nullable,
// cid-link fields are `Cid`, bytes are Uint8Array, size limits) and returns a
// typed event. Unknown and deprecated message types are results, not errors,
// so the caller can count and skip them without a try/catch on the hot path;
// a known type with a bad shape throws EventShapeError. Unknown fields are
// ignored (the lexicon may grow). Syntax of DIDs, datetimes and handles is only
// checked loosely here (prefix/non-empty); full syntax checks live elsewhere.
import { type Cid, isCid } from './cid.ts';

/** Lexicon limits: `#commit.ops` maxLength and `#commit.blocks` / `#sync.blocks` maxLength. */
export const MAX_COMMIT_OPS = 200;
export const MAX_COMMIT_BLOCKS_BYTES = 2_000_000;
export const MAX_SYNC_BLOCKS_BYTES = 10_000;

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

  optionalString(field: string): string | undefined {
    const v = this.body[field];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') this.fail('bad-field', field, 'must be a string');
    return v;
  }

  did(field: string): string {
    const v = this.string(field);
    if (!v.startsWith('did:')) this.fail('bad-field', field, 'must be a DID');
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
    rev: r.string('rev'),
    since,
    blocks: r.bytes('blocks', MAX_COMMIT_BLOCKS_BYTES),
    ops: rawOps.map((op, i) => r.repoOp(op, i)),
    blobs: blobs as Cid[],
    time: r.string('time'),
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
          rev: r.string('rev'),
          time: r.string('time'),
        },
      };
    case '#identity': {
      const event: IdentityEvent = { seq: r.seq(), did: r.did('did'), time: r.string('time') };
      const handle = r.optionalString('handle');
      if (handle !== undefined) event.handle = handle;
      return { kind: 'identity', event };
    }
    case '#account': {
      const event: AccountEvent = {
        seq: r.seq(),
        did: r.did('did'),
        time: r.string('time'),
        active: r.bool('active'),
      };
      const status = r.optionalString('status');
      if (status !== undefined) event.status = status;
      return { kind: 'account', event };
    }
    case '#info': {
      const event: InfoEvent = { name: r.string('name') };
      const message = r.optionalString('message');
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
