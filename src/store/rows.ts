// Row → domain object mapping shared by both backends. SQLite hands back
// integers for booleans and numbers for everything; node-postgres hands back
// booleans and strings for BIGINT columns. Number()/Boolean() cover both, so
// the two backends produce identical objects from the same column names.
import type { Account, AccountStatus, DomainBan, Host, HostStatus, Takedown } from './metadata-store.ts';
import { ACCOUNT_STATUSES, HOST_STATUSES } from './metadata-store.ts';

export interface HostRow {
  id: number | string;
  hostname: string;
  tls: number | boolean;
  status: string;
  last_seq: number | string;
  failures: number;
  account_limit: number;
  account_count: number;
  trusted: number | boolean;
  created_at: number | string;
  updated_at: number | string;
}

export interface AccountRow {
  uid: number | string;
  did: string;
  host_id: number | string;
  status: string;
  upstream_status: string;
  rev: string | null;
  commit_cid: string | null;
  data_cid: string | null;
  created_at: number | string;
}

export function hostFromRow(r: HostRow): Host {
  return {
    id: Number(r.id),
    hostname: r.hostname,
    tls: Boolean(r.tls),
    status: r.status as HostStatus,
    cursor: Number(r.last_seq),
    failures: Number(r.failures),
    accountLimit: Number(r.account_limit),
    accountCount: Number(r.account_count),
    trusted: Boolean(r.trusted),
    createdAt: new Date(Number(r.created_at)),
    updatedAt: new Date(Number(r.updated_at)),
  };
}

export function accountFromRow(r: AccountRow): Account {
  return {
    uid: Number(r.uid),
    did: r.did,
    hostId: Number(r.host_id),
    status: r.status as AccountStatus,
    upstreamStatus: r.upstream_status as AccountStatus,
    head: r.rev === null ? null : { rev: r.rev, commitCid: r.commit_cid ?? '', dataCid: r.data_cid ?? '' },
    createdAt: new Date(Number(r.created_at)),
  };
}

export function banFromRow(r: { domain: string; created_at: number | string }): DomainBan {
  return { domain: r.domain, createdAt: new Date(Number(r.created_at)) };
}

export function takedownFromRow(r: {
  did: string;
  reason: string | null;
  created_at: number | string;
}): Takedown {
  return { did: r.did, reason: r.reason, createdAt: new Date(Number(r.created_at)) };
}

export function emptyHostCounts(): Record<HostStatus, number> {
  return Object.fromEntries(HOST_STATUSES.map((s) => [s, 0])) as Record<HostStatus, number>;
}

export function checkHostStatus(s: string): HostStatus {
  if (!(HOST_STATUSES as readonly string[]).includes(s)) throw new Error(`unknown host status: ${s}`);
  return s as HostStatus;
}

export function checkAccountStatus(s: string): AccountStatus {
  if (!(ACCOUNT_STATUSES as readonly string[]).includes(s)) throw new Error(`unknown account status: ${s}`);
  return s as AccountStatus;
}

export function checkPageLimit(limit: number): number {
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > 100_000) {
    throw new Error(`page limit must be an integer in [1, 100000], got ${limit}`);
  }
  return limit;
}

export function checkSeq(seq: number): number {
  if (!Number.isSafeInteger(seq) || seq < 0)
    throw new Error(`cursor must be a non-negative integer, got ${seq}`);
  return seq;
}

/** Settings key of the event-log checkpoint written with the host cursors (MetadataStore.getLogCheckpoint). */
export const LOG_CHECKPOINT_KEY = 'ingest.logCheckpoint';
