// RelayMetadataStore: the MetadataStore the relay uses, the same for both
// backends. It validates and normalises input (hostnames, statuses, limits),
// serves account lookups from the bounded DID cache and refreshes that cache
// from the rows every account write returns, and routes cursor updates
// through the coalescer. Keeping this layer out of the backends is what makes
// SQLite and PostgreSQL behave identically: they only run SQL.
import type { Logger } from '../log.ts';
import { silentLogger } from '../log.ts';
import { AccountCache } from './account-cache.ts';
import { CursorCoalescer } from './cursor-coalescer.ts';
import { domainSuffixes, normaliseDomain, normaliseHostname } from './hostname.ts';
import type {
  Account,
  AccountPageOptions,
  AccountStatus,
  Created,
  DomainBan,
  HeadUpdate,
  Host,
  HostPageOptions,
  HostStatus,
  MetadataBackend,
  MetadataStore,
  NewAccount,
  NewHost,
  PageOptions,
  RelaySettings,
  RepoHead,
  SettingKey,
  Takedown,
} from './metadata-store.ts';
import { checkAccountStatus, checkHostStatus, checkPageLimit, checkSeq, LOG_CHECKPOINT_KEY } from './rows.ts';

export interface RelayMetadataStoreOptions {
  /** Max accounts cached by DID (~630 bytes each with a head). Default 100,000 (~63 MB). */
  cacheSize?: number;
  /** Cursor flush interval; 0 = only on flushCursors()/close(). Default 5,000 ms. */
  cursorFlushMs?: number;
  log?: Logger;
}

function checkId(id: number, what: string): number {
  if (!Number.isSafeInteger(id) || id < 1) throw new Error(`${what} must be a positive integer, got ${id}`);
  return id;
}

function checkHead(head: RepoHead): RepoHead {
  if (typeof head.rev !== 'string' || head.rev === '') throw new Error('repo head needs a rev');
  if (typeof head.commitCid !== 'string' || head.commitCid === '')
    throw new Error('repo head needs a commit CID');
  if (typeof head.dataCid !== 'string' || head.dataCid === '') throw new Error('repo head needs a data CID');
  return head;
}

function checkPage<T extends PageOptions>(opts: T): T {
  checkPageLimit(opts.limit);
  if (opts.after !== undefined && (!Number.isSafeInteger(opts.after) || opts.after < 0)) {
    throw new Error(`page cursor must be a non-negative integer, got ${opts.after}`);
  }
  return opts;
}

export class RelayMetadataStore implements MetadataStore {
  readonly backend: 'sqlite' | 'postgres';
  private readonly cache: AccountCache;
  private readonly cursors: CursorCoalescer;
  private readonly loadByDid: (did: string) => Promise<Account | undefined>;
  private closed = false;

  constructor(
    private readonly db: MetadataBackend,
    opts: RelayMetadataStoreOptions = {},
  ) {
    this.backend = db.kind;
    this.cache = new AccountCache(opts.cacheSize ?? 100_000);
    this.cursors = new CursorCoalescer({
      sink: (updates, checkpoint) => db.flushHostCursors(updates, checkpoint),
      intervalMs: opts.cursorFlushMs ?? 5_000,
      log: (opts.log ?? silentLogger).child({ module: 'cursor-coalescer' }),
    });
    this.loadByDid = (did) => db.getAccountByDid(did);
  }

  private withCursor(host: Host | undefined): Host | undefined {
    if (!host) return host;
    const pending = this.cursors.peek(host.id);
    if (pending !== undefined && pending > host.cursor) host.cursor = pending;
    return host;
  }

  private refreshed(account: Account | undefined): Account | undefined {
    if (account) this.cache.refresh(account);
    return account;
  }

  // --- hosts ---

  async createHost(input: NewHost): Promise<Created<Host>> {
    const hostname = normaliseHostname(input.hostname);
    if (input.status !== undefined) checkHostStatus(input.status);
    if (
      input.accountLimit !== undefined &&
      (!Number.isSafeInteger(input.accountLimit) || input.accountLimit < 0)
    ) {
      throw new Error(`account limit must be a non-negative integer, got ${input.accountLimit}`);
    }
    const res = await this.db.createHost({ ...input, hostname });
    this.withCursor(res.value);
    return res;
  }

  async getHost(id: number): Promise<Host | undefined> {
    return this.withCursor(await this.db.getHost(id));
  }

  async getHostByHostname(hostname: string): Promise<Host | undefined> {
    return this.withCursor(await this.db.getHostByHostname(normaliseHostname(hostname)));
  }

  async listHosts(opts: HostPageOptions): Promise<Host[]> {
    checkPage(opts);
    if (opts.status !== undefined) checkHostStatus(opts.status);
    const hosts = await this.db.listHosts(opts);
    for (const h of hosts) this.withCursor(h);
    return hosts;
  }

  async setHostStatus(id: number, status: HostStatus): Promise<Host | undefined> {
    return this.withCursor(await this.db.setHostStatus(checkId(id, 'host id'), checkHostStatus(status)));
  }

  updateHostCursor(hostId: number, seq: number): void {
    this.cursors.update(hostId, seq);
  }

  flushCursors(): Promise<void> {
    return this.cursors.flush();
  }

  async getLogCheckpoint(): Promise<number | undefined> {
    const json = await this.db.getSettingJson(LOG_CHECKPOINT_KEY);
    if (json === undefined) return undefined;
    const n = Number(json);
    return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
  }

  setLogCheckpointSource(source: () => number): void {
    this.cursors.setCheckpointSource(source);
  }

  setCursorWriteBarrier(barrier: () => Promise<void>): void {
    this.cursors.setBarrier(barrier);
  }

  async resetHostCursor(hostId: number, seq: number): Promise<void> {
    checkSeq(seq);
    await this.cursors.flush(); // let a running batch land first so it cannot overwrite the reset
    this.cursors.forget(hostId);
    await this.db.setHostCursor(checkId(hostId, 'host id'), seq);
  }

  recordHostFailure(id: number): Promise<number> {
    return this.db.recordHostFailure(checkId(id, 'host id'));
  }

  resetHostFailures(id: number): Promise<void> {
    return this.db.resetHostFailures(checkId(id, 'host id'));
  }

  setHostAccountLimit(id: number, limit: number): Promise<void> {
    if (!Number.isSafeInteger(limit) || limit < 0) throw new Error(`invalid account limit: ${limit}`);
    return this.db.setHostAccountLimit(checkId(id, 'host id'), limit);
  }

  setHostTrusted(id: number, trusted: boolean): Promise<void> {
    return this.db.setHostTrusted(checkId(id, 'host id'), trusted);
  }

  countHostsByStatus(): Promise<Record<HostStatus, number>> {
    return this.db.countHostsByStatus();
  }

  // --- accounts ---

  getAccountByDid(did: string): Promise<Account | undefined> {
    return this.cache.get(did, this.loadByDid);
  }

  cachedAccountByDid(did: string): Account | undefined {
    return this.cache.peek(did);
  }

  getAccountByUid(uid: number): Promise<Account | undefined> {
    return this.db.getAccountByUid(uid);
  }

  async createAccount(input: NewAccount): Promise<Created<Account>> {
    if (typeof input.did !== 'string' || !input.did.startsWith('did:'))
      throw new Error(`invalid DID: ${input.did}`);
    checkId(input.hostId, 'host id');
    if (input.status !== undefined) checkAccountStatus(input.status);
    if (input.upstreamStatus !== undefined) checkAccountStatus(input.upstreamStatus);
    const res = await this.db.createAccount(input);
    this.cache.refresh(res.value);
    this.cache.put(res.value);
    return res;
  }

  async importAccounts(inputs: readonly NewAccount[]): Promise<number> {
    for (const a of inputs) {
      if (!a.did.startsWith('did:')) throw new Error(`invalid DID: ${a.did}`);
      checkId(a.hostId, 'host id');
      if (a.status !== undefined) checkAccountStatus(a.status);
      if (a.upstreamStatus !== undefined) checkAccountStatus(a.upstreamStatus);
    }
    // No cache work needed: newly created accounts cannot be cached, existing ones are skipped.
    return this.db.importAccounts(inputs);
  }

  async setAccountHost(uid: number, hostId: number): Promise<Account | undefined> {
    return this.refreshed(await this.db.setAccountHost(uid, checkId(hostId, 'host id')));
  }

  async setAccountStatus(uid: number, status: AccountStatus): Promise<Account | undefined> {
    return this.refreshed(await this.db.setAccountStatus(uid, checkAccountStatus(status)));
  }

  async setAccountUpstreamStatus(uid: number, status: AccountStatus): Promise<Account | undefined> {
    return this.refreshed(await this.db.setAccountUpstreamStatus(uid, checkAccountStatus(status)));
  }

  async updateAccountHead(uid: number, head: RepoHead): Promise<boolean> {
    const account = await this.db.updateAccountHead(uid, checkHead(head));
    if (!account) return false;
    this.cache.refresh(account);
    return true;
  }

  async updateAccountHeads(updates: readonly HeadUpdate[]): Promise<boolean[]> {
    if (updates.length === 0) return [];
    for (const u of updates) checkHead(u.head);
    const written = await this.db.updateAccountHeads(updates);
    // In order, so a uid written twice leaves the cache at its last applied head.
    updates.forEach((u, i) => {
      if (!written[i]) return;
      if (u.did !== undefined) this.cache.patchHead(u.did, u.uid, u.head);
      else this.cache.invalidateUid(u.uid);
    });
    return written;
  }

  async resetAccountHead(uid: number, head: RepoHead | null): Promise<Account | undefined> {
    return this.refreshed(await this.db.resetAccountHead(uid, head && checkHead(head)));
  }

  listAccounts(opts: AccountPageOptions): Promise<Account[]> {
    return this.db.listAccounts(checkPage(opts));
  }

  countAccountsByHost(hostId: number): Promise<number> {
    return this.db.countAccountsByHost(hostId);
  }

  listThrottledAccounts(hostId: number, opts: PageOptions): Promise<Account[]> {
    return this.db.listThrottledAccounts(hostId, checkPage(opts));
  }

  // --- bans and takedowns ---

  addDomainBan(domain: string): Promise<void> {
    return this.db.addDomainBan(normaliseDomain(domain));
  }

  removeDomainBan(domain: string): Promise<boolean> {
    return this.db.removeDomainBan(normaliseDomain(domain));
  }

  listDomainBans(): Promise<DomainBan[]> {
    return this.db.listDomainBans();
  }

  isDomainBanned(hostname: string): Promise<boolean> {
    return this.db.anyDomainBanned(domainSuffixes(hostname));
  }

  async setTakedown(did: string, reason?: string): Promise<void> {
    this.refreshed(await this.db.setTakedown(did, reason));
  }

  async clearTakedown(did: string): Promise<boolean> {
    const { removed, account } = await this.db.clearTakedown(did);
    this.refreshed(account);
    return removed;
  }

  isTakenDown(did: string): Promise<boolean> {
    return this.db.isTakenDown(did);
  }

  listTakedowns(opts: { after?: string; limit: number }): Promise<Takedown[]> {
    checkPageLimit(opts.limit);
    return this.db.listTakedowns(opts);
  }

  // --- settings ---

  async getSetting<K extends SettingKey>(key: K): Promise<RelaySettings[K] | undefined> {
    const json = await this.db.getSettingJson(key);
    return json === undefined ? undefined : (JSON.parse(json) as RelaySettings[K]);
  }

  setSetting<K extends SettingKey>(key: K, value: RelaySettings[K]): Promise<void> {
    return this.db.setSettingJson(key, JSON.stringify(value));
  }

  // --- operations ---

  cacheStats(): { size: number; capacity: number; hits: number; misses: number } {
    return {
      size: this.cache.size,
      capacity: this.cache.capacity,
      hits: this.cache.hits,
      misses: this.cache.misses,
    };
  }

  cursorStats(): { flushes: number; rowsWritten: number; pending: number; waitingForBarrier: boolean } {
    return {
      flushes: this.cursors.flushes,
      rowsWritten: this.cursors.rowsWritten,
      pending: this.cursors.pendingCount,
      waitingForBarrier: this.cursors.waitingForBarrier,
    };
  }

  forgetCachedAccount(did: string): void {
    this.cache.invalidate(did);
  }

  healthCheck(): Promise<void> {
    return this.db.healthCheck();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.cursors.close();
    } finally {
      this.cache.clear();
      await this.db.close();
    }
  }
}
