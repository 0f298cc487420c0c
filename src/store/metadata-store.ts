// The relay's durable metadata (hosts, accounts and their repo heads, host
// cursors, bans, takedowns, relay-wide settings) behind one async interface.
// Two backends implement the SQL half (`MetadataBackend`): embedded SQLite
// and PostgreSQL. `RelayMetadataStore` (store.ts) puts the hot-path helpers in
// front of either one — a bounded DID cache and a cursor coalescer — so both
// deployments behave identically and pass the same test suite.
//
// CIDs are plain strings (base32 `b…` form) so the store does not depend on
// protocol code; timestamps are stored as epoch milliseconds in both backends.

export const HOST_STATUSES = ['active', 'idle', 'offline', 'throttled', 'banned', 'blocked'] as const;
export type HostStatus = (typeof HOST_STATUSES)[number];

/** Local (relay-decided) and upstream (#account event) account states share one vocabulary. */
export const ACCOUNT_STATUSES = [
  'active',
  'takendown',
  'suspended',
  'deactivated',
  'deleted',
  'desynchronized',
  'throttled',
] as const;
export type AccountStatus = (typeof ACCOUNT_STATUSES)[number];

/** indigo's default per-host account limit for hosts that are not trusted. */
export const DEFAULT_HOST_ACCOUNT_LIMIT = 100;

export interface Host {
  id: number;
  /** Normalised: lower case, no scheme, no trailing dot, optional `:port`. */
  hostname: string;
  tls: boolean;
  status: HostStatus;
  /** Last upstream seq processed; includes a not-yet-flushed coalesced value. */
  cursor: number;
  failures: number;
  accountLimit: number;
  /** Maintained in the same transaction as account inserts and host moves. */
  accountCount: number;
  trusted: boolean;
  createdAt: Date;
  updatedAt: Date;
}

export interface RepoHead {
  /** A TID; TIDs sort lexicographically in time order. */
  rev: string;
  commitCid: string;
  dataCid: string;
}

export interface Account {
  /** Compact numeric id, assigned on creation, never reused. */
  uid: number;
  did: string;
  hostId: number;
  status: AccountStatus;
  upstreamStatus: AccountStatus;
  /** null until the first commit is accepted. */
  head: RepoHead | null;
  createdAt: Date;
}

export interface NewHost {
  hostname: string;
  tls?: boolean;
  status?: HostStatus;
  accountLimit?: number;
  trusted?: boolean;
}

export interface NewAccount {
  did: string;
  hostId: number;
  status?: AccountStatus;
  upstreamStatus?: AccountStatus;
}

export interface Created<T> {
  value: T;
  /** false when the row already existed (the existing row is returned). */
  created: boolean;
}

export interface PageOptions {
  /** Exclusive lower bound on the id / uid; omit for the first page. */
  after?: number;
  limit: number;
}

export interface HostPageOptions extends PageOptions {
  status?: HostStatus;
}

export interface AccountPageOptions extends PageOptions {
  /** Only accounts whose local and upstream status are both `active`. */
  activeOnly?: boolean;
}

/** One rev-gated repo head write, as passed to `updateAccountHeads`. */
export interface HeadUpdate {
  uid: number;
  /**
   * The account's DID: the account cache is keyed by it, so a written head is
   * patched in rather than re-read (without it the cached account is dropped).
   */
  did?: string;
  head: RepoHead;
}

export interface CursorUpdate {
  hostId: number;
  seq: number;
}

export interface DomainBan {
  domain: string;
  createdAt: Date;
}

export interface Takedown {
  did: string;
  reason: string | null;
  createdAt: Date;
}

/**
 * Relay-wide settings with their value types. Other modules may add keys by
 * declaration merging (`declare module '../store/metadata-store.ts'`).
 */
export interface RelaySettings {
  newHostsPerDay: number;
  requestCrawlEnabled: boolean;
}

export type SettingKey = keyof RelaySettings;

/** The SQL half: what each backend implements. Writes return the changed row. */
export interface MetadataBackend {
  readonly kind: 'sqlite' | 'postgres';

  createHost(input: NewHost): Promise<Created<Host>>;
  getHost(id: number): Promise<Host | undefined>;
  getHostByHostname(hostname: string): Promise<Host | undefined>;
  listHosts(opts: HostPageOptions): Promise<Host[]>;
  setHostStatus(id: number, status: HostStatus): Promise<Host | undefined>;
  /** Unconditional (may move backwards): for host resets. */
  setHostCursor(id: number, seq: number): Promise<void>;
  /**
   * One transaction; a row is written only where the new seq is greater.
   * With `checkpoint`, the `ingest.logCheckpoint` setting is written in the
   * same transaction (see MetadataStore.setLogCheckpointSource). Returns rows written.
   */
  flushHostCursors(updates: readonly CursorUpdate[], checkpoint?: number): Promise<number>;
  recordHostFailure(id: number): Promise<number>;
  resetHostFailures(id: number): Promise<void>;
  setHostAccountLimit(id: number, limit: number): Promise<void>;
  setHostTrusted(id: number, trusted: boolean): Promise<void>;
  countHostsByStatus(): Promise<Record<HostStatus, number>>;

  getAccountByDid(did: string): Promise<Account | undefined>;
  getAccountByUid(uid: number): Promise<Account | undefined>;
  createAccount(input: NewAccount): Promise<Created<Account>>;
  /** Bulk insert (backfill, benchmarks); existing DIDs are skipped. Returns how many were created. */
  importAccounts(inputs: readonly NewAccount[]): Promise<number>;
  setAccountHost(uid: number, hostId: number): Promise<Account | undefined>;
  setAccountStatus(uid: number, status: AccountStatus): Promise<Account | undefined>;
  setAccountUpstreamStatus(uid: number, status: AccountStatus): Promise<Account | undefined>;
  /** Applies only when there is no head yet or `head.rev` is greater; undefined when not applied. */
  updateAccountHead(uid: number, head: RepoHead): Promise<Account | undefined>;
  /**
   * updateAccountHead for each update, in order (a uid may repeat): one result
   * per update, whether it was applied. One transaction on SQLite, one round
   * trip on PostgreSQL unless a uid repeats or the batch is very large. (No
   * rows come back: the hot path writes a head per commit.)
   */
  updateAccountHeads(updates: readonly HeadUpdate[]): Promise<boolean[]>;
  resetAccountHead(uid: number, head: RepoHead | null): Promise<Account | undefined>;
  listAccounts(opts: AccountPageOptions): Promise<Account[]>;
  countAccountsByHost(hostId: number): Promise<number>;
  listThrottledAccounts(hostId: number, opts: PageOptions): Promise<Account[]>;

  addDomainBan(domain: string): Promise<void>;
  removeDomainBan(domain: string): Promise<boolean>;
  listDomainBans(): Promise<DomainBan[]>;
  /** True when any of the given normalised suffixes is banned. */
  anyDomainBanned(suffixes: readonly string[]): Promise<boolean>;

  /** Records the takedown and sets the account (if known) to `takendown`, atomically. */
  setTakedown(did: string, reason?: string): Promise<Account | undefined>;
  /** Removes the takedown and returns a `takendown` account to `active`. */
  clearTakedown(did: string): Promise<{ removed: boolean; account: Account | undefined }>;
  isTakenDown(did: string): Promise<boolean>;
  listTakedowns(opts: { after?: string; limit: number }): Promise<Takedown[]>;

  getSettingJson(key: string): Promise<string | undefined>;
  setSettingJson(key: string, json: string): Promise<void>;

  healthCheck(): Promise<void>;
  close(): Promise<void>;
}

/** What the relay uses: the backend operations plus caching and cursor coalescing. */
export interface MetadataStore {
  readonly backend: 'sqlite' | 'postgres';

  createHost(input: NewHost): Promise<Created<Host>>;
  getHost(id: number): Promise<Host | undefined>;
  getHostByHostname(hostname: string): Promise<Host | undefined>;
  listHosts(opts: HostPageOptions): Promise<Host[]>;
  setHostStatus(id: number, status: HostStatus): Promise<Host | undefined>;
  /**
   * Where a restart must start reading the event log to learn which upstream
   * events beyond the stored host cursors were already relayed: every event
   * relayed from a host with an upstream seq above that host's stored cursor
   * has a relay seq above this value. Written atomically with the cursors;
   * undefined until the first flush after a source is set.
   */
  getLogCheckpoint(): Promise<number | undefined>;
  /**
   * The function the cursor coalescer calls at the moment it takes a batch of
   * cursors to write; its value is stored with them (getLogCheckpoint).
   */
  setLogCheckpointSource(source: () => number): void;
  /**
   * What every cursor batch waits for between being taken and being written:
   * the repo heads of the frames it passes are in the store (the Validator's
   * headsWritten; see validate/head-writer.ts).
   */
  setCursorWriteBarrier(barrier: () => Promise<void>): void;
  /** O(1), in memory; written by the coalescer's timer, by flushCursors() and at close(). */
  updateHostCursor(hostId: number, seq: number): void;
  flushCursors(): Promise<void>;
  /** Immediate and unconditional (may move backwards); discards any pending coalesced value. */
  resetHostCursor(hostId: number, seq: number): Promise<void>;
  recordHostFailure(id: number): Promise<number>;
  resetHostFailures(id: number): Promise<void>;
  setHostAccountLimit(id: number, limit: number): Promise<void>;
  setHostTrusted(id: number, trusted: boolean): Promise<void>;
  countHostsByStatus(): Promise<Record<HostStatus, number>>;

  /** Served from the bounded in-process cache when possible. */
  getAccountByDid(did: string): Promise<Account | undefined>;
  /**
   * The account when the in-process cache holds it (what getAccountByDid
   * would answer), without waiting: the validator's synchronous fast path.
   * Undefined on a miss, or where a store has no cache.
   */
  cachedAccountByDid?(did: string): Account | undefined;
  getAccountByUid(uid: number): Promise<Account | undefined>;
  createAccount(input: NewAccount): Promise<Created<Account>>;
  importAccounts(inputs: readonly NewAccount[]): Promise<number>;
  setAccountHost(uid: number, hostId: number): Promise<Account | undefined>;
  setAccountStatus(uid: number, status: AccountStatus): Promise<Account | undefined>;
  setAccountUpstreamStatus(uid: number, status: AccountStatus): Promise<Account | undefined>;
  /** Rev-gated: true when applied (no head yet, or the new rev is greater). */
  updateAccountHead(uid: number, head: RepoHead): Promise<boolean>;
  /**
   * Many rev-gated head writes in one call, each with updateAccountHead's
   * semantics, applied in array order (several for one uid behave as if
   * sequential). Returns which applied. SQLite: one transaction.
   */
  updateAccountHeads(updates: readonly HeadUpdate[]): Promise<boolean[]>;
  /** For #sync / resync: replaces the head whatever its rev (null clears it). */
  resetAccountHead(uid: number, head: RepoHead | null): Promise<Account | undefined>;
  listAccounts(opts: AccountPageOptions): Promise<Account[]>;
  countAccountsByHost(hostId: number): Promise<number>;
  listThrottledAccounts(hostId: number, opts: PageOptions): Promise<Account[]>;

  addDomainBan(domain: string): Promise<void>;
  removeDomainBan(domain: string): Promise<boolean>;
  listDomainBans(): Promise<DomainBan[]>;
  /** Suffix match on labels: a ban on `example.com` covers `pds.example.com`, not `badexample.com`. */
  isDomainBanned(hostname: string): Promise<boolean>;

  setTakedown(did: string, reason?: string): Promise<void>;
  clearTakedown(did: string): Promise<boolean>;
  isTakenDown(did: string): Promise<boolean>;
  listTakedowns(opts: { after?: string; limit: number }): Promise<Takedown[]>;

  getSetting<K extends SettingKey>(key: K): Promise<RelaySettings[K] | undefined>;
  setSetting<K extends SettingKey>(key: K, value: RelaySettings[K]): Promise<void>;

  cacheStats(): { size: number; capacity: number; hits: number; misses: number };
  /** `waitingForBarrier`: a taken batch waits for its write barrier (setCursorWriteBarrier). */
  cursorStats(): { flushes: number; rowsWritten: number; pending: number; waitingForBarrier: boolean };

  /**
   * Drops the cached row of an account that another process changed (scale-out:
   * every process sees the others' #account/#identity events on the shared log).
   */
  forgetCachedAccount?(did: string): void;
  healthCheck(): Promise<void>;
  /** Flushes pending cursors, then closes the backend. */
  close(): Promise<void>;
}
