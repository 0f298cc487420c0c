// A Jetstream subscriber's filter, parsed from the `/subscribe` query or an
// `options_update` message, with Jetstream v1's rules (checked against
// bluesky-social/jetstream internal/subscribe/filter.go):
// - wantedCollections: NSIDs or prefixes ending in `.*` (the head is not
//   validated, so `app.bsky.*` works); at most 100 distinct; they apply to
//   commits only: identity and account events always pass.
// - wantedDids: DIDs, at most 10,000 distinct; they apply to every kind.
// - maxMessageSizeBytes: 0, absent, negative or malformed mean no limit;
//   larger messages are skipped for this subscriber.
// - requireHello: exactly the string "true".
// A hostile list is refused before any large structure is built from it.
import { isValidDid, isValidNsid } from '../protocol/syntax.ts';
import type { JetstreamKind, JetstreamMessage } from './encode.ts';

export const MAX_WANTED_COLLECTIONS = 100;
export const MAX_WANTED_DIDS = 10_000;

export class FilterError extends Error {}

export class SubscriberFilter {
  private constructor(
    /** null: every DID */
    readonly dids: ReadonlySet<string> | null,
    /** null: every collection */
    readonly collections: ReadonlySet<string> | null,
    readonly prefixes: readonly string[],
    /** 0: no limit */
    readonly maxMessageSizeBytes: number,
  ) {}

  static readonly all = new SubscriberFilter(null, null, [], 0);

  /** Throws FilterError on a bad list (the connection is refused or closed). */
  static parse(
    collections: readonly unknown[],
    dids: readonly unknown[],
    maxMessageSizeBytes: number,
  ): SubscriberFilter {
    return new SubscriberFilter(parseDids(dids), ...parseCollections(collections), maxMessageSizeBytes);
  }

  /** True when the filter selects everything (no per-message test needed). */
  get selectsAll(): boolean {
    return this.dids === null && this.collections === null && this.maxMessageSizeBytes === 0;
  }

  /**
   * The filter without the size limit, before a message is built: what a
   * replaying subscriber passes to encodeEvent so it skips the records it
   * would not send (undefined when it wants everything).
   */
  get prefilter(): ((kind: JetstreamKind, did: string, collection?: string) => boolean) | undefined {
    if (this.dids === null && this.collections === null) return undefined;
    return (kind, did, collection) => {
      if (this.dids !== null && !this.dids.has(did)) return false;
      if (this.collections === null || kind !== 'commit' || collection === undefined) return true;
      if (this.collections.has(collection)) return true;
      for (const p of this.prefixes) if (collection.startsWith(p)) return true;
      return false;
    };
  }

  wants(m: JetstreamMessage): boolean {
    if (this.maxMessageSizeBytes > 0 && m.jsonBytes > this.maxMessageSizeBytes) return false;
    if (this.dids !== null && !this.dids.has(m.did)) return false;
    if (this.collections === null || m.kind !== 'commit' || !m.collection) return true;
    if (this.collections.has(m.collection)) return true;
    for (const p of this.prefixes) if (m.collection.startsWith(p)) return true;
    return false;
  }
}

function parseCollections(values: readonly unknown[]): [Set<string> | null, string[]] {
  if (values.length === 0) return [null, []];
  if (values.length > MAX_WANTED_COLLECTIONS * 100) throw new FilterError('too many wanted collections');
  const full = new Set<string>();
  const prefixes = new Set<string>();
  for (const raw of values) {
    if (typeof raw !== 'string') throw new FilterError('wantedCollections must be strings');
    if (raw.endsWith('.*')) {
      if (raw.length > 320) throw new FilterError(`invalid collection: ${raw.slice(0, 64)}`);
      prefixes.add(raw.slice(0, -1));
    } else if (isValidNsid(raw)) full.add(raw);
    else throw new FilterError(`invalid collection: ${String(raw).slice(0, 320)}`);
    if (full.size + prefixes.size > MAX_WANTED_COLLECTIONS)
      throw new FilterError(`too many wanted collections: > ${MAX_WANTED_COLLECTIONS}`);
  }
  // an empty full set with prefixes still filters: only the prefixes match
  return [full, [...prefixes]];
}

function parseDids(values: readonly unknown[]): Set<string> | null {
  if (values.length === 0) return null;
  if (values.length > MAX_WANTED_DIDS * 100) throw new FilterError('too many wanted DIDs');
  const out = new Set<string>();
  for (const raw of values) {
    if (typeof raw !== 'string' || !isValidDid(raw))
      throw new FilterError(`invalid DID: ${String(raw).slice(0, 64)}`);
    out.add(raw);
  }
  if (out.size > MAX_WANTED_DIDS)
    throw new FilterError(`too many wanted DIDs: ${out.size} > ${MAX_WANTED_DIDS}`);
  return out;
}

/** maxMessageSizeBytes from the query: anything but a non-negative integer means no limit (v1 parity). */
export function parseMaxMessageSize(raw: string | null): number {
  if (raw === null || !/^-?\d+$/.test(raw)) return 0;
  const n = Number(raw);
  return n > 0 && n <= 0xffff_ffff ? n : 0;
}

/** The query of a `/subscribe` request. */
export interface SubscribeQuery {
  filter: SubscriberFilter;
  /** time_us cursor (undefined: live only). */
  cursor?: number;
  requireHello: boolean;
  /** compress=true was asked (not supported: the server refuses the connection). */
  compressionAsked: boolean;
}

/** Parses the query string; throws FilterError for a bad one (answered 400). */
export function parseSubscribeQuery(params: URLSearchParams): SubscribeQuery {
  const filter = SubscriberFilter.parse(
    params.getAll('wantedCollections'),
    params.getAll('wantedDids'),
    parseMaxMessageSize(params.get('maxMessageSizeBytes')),
  );
  const rawCursor = params.get('cursor');
  let cursor: number | undefined;
  if (rawCursor !== null && rawCursor !== '') {
    // Jetstream: strconv.ParseInt; a negative cursor means live
    if (!/^-?\d+$/.test(rawCursor)) throw new FilterError(`invalid cursor: ${rawCursor.slice(0, 32)}`);
    const n = Number(rawCursor);
    if (!Number.isSafeInteger(n)) throw new FilterError('cursor out of range');
    if (n >= 0) cursor = n;
  }
  return {
    filter,
    cursor,
    requireHello: params.get('requireHello') === 'true',
    compressionAsked: params.get('compress') === 'true',
  };
}

/** Parses an options_update payload (Jetstream's UpdatePayload). */
export function parseOptionsUpdate(payload: unknown): SubscriberFilter {
  // Jetstream decodes a missing or null payload into an empty one: no filter
  if (payload === undefined || payload === null) return SubscriberFilter.all;
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload))
    throw new FilterError('options_update payload must be an object');
  const p = payload as Record<string, unknown>;
  const list = (v: unknown, name: string): unknown[] => {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) throw new FilterError(`${name} must be an array`);
    return v;
  };
  const max =
    typeof p.maxMessageSizeBytes === 'number' && Number.isFinite(p.maxMessageSizeBytes)
      ? p.maxMessageSizeBytes
      : 0;
  return SubscriberFilter.parse(
    list(p.wantedCollections, 'wantedCollections'),
    list(p.wantedDids, 'wantedDids'),
    max > 0 && max <= 0xffff_ffff ? Math.floor(max) : 0,
  );
}
