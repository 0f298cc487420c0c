// One simulated PDS host: accounts with real repos (via SimRepo), an event
// sequencer with subscribeRepos on a WebSocket, and the sync XRPC endpoints a
// relay calls, all on one loopback port.
//
// Events are made in two steps so the network generator can work ahead:
// `queue*` applies a write to the repo and encodes the event (signing and
// CBOR/CAR encoding are the expensive part), `emitQueued` later assigns seqs
// and sends. Direct calls from tests (`writeRecords`, `deactivate`, …) first
// emit whatever is queued, then make and emit their own event at once, so an
// account's events always leave in the order its repo changed. Fault knobs
// (faults.ts) are consulted when a commit is made (commit faults) and when an
// event is sent (transport faults). Hostile-host knobs (`hostile`,
// hostile.ts) send hostile frames and serve CAR bombs only when a test asks.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { type Cid, cidForCbor } from '../src/protocol/cid.ts';
import { encodeErrorFrame } from '../src/protocol/frames.ts';
import { formatMultikey, type KeyAlg, Keypair } from '../src/protocol/keys.ts';
import { TidClock, tidFromTime, tidTimestampMs } from '../src/protocol/tid.ts';
import {
  type CommitFault,
  type FaultKind,
  FaultKnobs,
  type FaultOptions,
  type FaultRecord,
  malformedCborFrame,
  oversizedCommitFrame,
  type TransportFault,
  truncateFrame,
} from './faults.ts';
import { Firehose } from './firehose.ts';
import { HostileKnobs } from './hostile.ts';
import { HostileRepos } from './hostile-repo.ts';
import { handleXrpc, XrpcHolds } from './pds-xrpc.ts';
import type { SimPlc } from './plc.ts';
import { Prng } from './prng.ts';
import { RecordIndex, randomWrite } from './records.ts';
import { type CommitResult, type RepoWrite, SimRepo } from './repo.ts';
import { type EventType, type PreparedFrame, prepareFrame, presealFrame, sealFrame } from './wire.ts';

export type AccountStatus = 'active' | 'deactivated' | 'takendown' | 'suspended' | 'deleted';

export interface HostedAccount {
  did: string;
  handle: string;
  signer: Keypair;
  repo: SimRepo;
  status: AccountStatus;
  /** the account's record paths, for picking update/delete targets */
  index: RecordIndex;
}

export interface EmittedEvent {
  seq: number;
  t: EventType;
  did: string;
  rev?: string;
  commit?: Cid;
  /** faults this event was made with (commit faults) */
  faults?: FaultKind[];
}

interface QueuedEvent {
  frame: PreparedFrame;
  rev?: string;
  commit?: Cid;
  faults?: CommitFault[];
}

export interface SimPdsOptions {
  plc: SimPlc;
  /** label used in handles (`user.<name>.test`) and logs; default `pds<port>` */
  name?: string;
  /** events kept for cursor replay (default 10,000) */
  historySize?: number;
  seed?: number | string;
  keyAlg?: KeyAlg;
}

let hostCounter = 0;

export class SimPds {
  readonly plc: SimPlc;
  readonly accounts = new Map<string, HostedAccount>();
  readonly firehose: Firehose;
  readonly faults = new FaultKnobs();
  /** XRPC replies a test holds back until it releases them (pds-xrpc.ts). */
  readonly xrpcHolds = new XrpcHolds();
  /** getRepo replies a test replaces with hostile CARs (hostile-repo.ts). */
  readonly hostileRepos = new HostileRepos();
  /** Hostile frames, floods and CAR bombs on demand (hostile.ts). */
  readonly hostile: HostileKnobs = new HostileKnobs(this);
  readonly prng: Prng;
  readonly clock: TidClock;
  readonly keyAlg: KeyAlg;
  name: string;
  /** fraction of generated commits that carry several writes */
  multiWriteShare = 0.05;
  private server: Server | null = null;
  private readonly wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  private port = 0;
  private queue: QueuedEvent[] = [];
  private queueHead = 0;
  private handleCounter = 0;
  /** events emitted, by type */
  readonly counts: Record<EventType, number> = { '#commit': 0, '#sync': 0, '#identity': 0, '#account': 0 };

  constructor(opts: SimPdsOptions) {
    this.plc = opts.plc;
    this.firehose = new Firehose(opts.historySize ?? 10_000);
    this.prng = new Prng(`pds:${opts.seed ?? hostCounter++}`);
    this.clock = new TidClock({ clockId: this.prng.int(1024) });
    this.keyAlg = opts.keyAlg ?? 'k256';
    this.name = opts.name ?? '';
  }

  static async start(opts: SimPdsOptions): Promise<SimPds> {
    const pds = new SimPds(opts);
    await pds.listen();
    return pds;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** host:port, as a relay would name this host */
  get hostname(): string {
    return `127.0.0.1:${this.port}`;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}/xrpc/com.atproto.sync.subscribeRepos`;
  }

  get serviceDid(): string {
    return `did:web:127.0.0.1%3A${this.port}`;
  }

  get userDomain(): string {
    return `.${this.name}.test`;
  }

  get seq(): number {
    return this.firehose.head;
  }

  get faultLog(): FaultRecord[] {
    return this.faults.log;
  }

  async listen(port = 0): Promise<void> {
    const server = createServer((req, res) => handleXrpc(this, req, res));
    server.keepAliveTimeout = 1000;
    server.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    this.port = (server.address() as AddressInfo).port;
    if (!this.name) this.name = `pds${this.port}`;
    this.server = server;
  }

  get online(): boolean {
    return this.server !== null;
  }

  /** Stops listening and drops every connection (no close frames), keeping all state: the host is down. */
  async goOffline(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    this.firehose.terminateAll();
    for (const ws of this.wss.clients) ws.terminate();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Listens again on the same port after goOffline(). */
  async goOnline(): Promise<void> {
    if (!this.server) await this.listen(this.port);
  }

  async stop(): Promise<void> {
    this.hostile.stop();
    await this.goOffline();
    this.wss.close();
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== '/xrpc/com.atproto.sync.subscribeRepos') {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const raw = url.searchParams.get('cursor');
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      if (raw !== null && !/^\d{1,15}$/.test(raw)) {
        ws.send(
          encodeErrorFrame('InvalidRequest', 'cursor must be a non-negative integer'),
          { binary: true },
          () => ws.close(),
        );
        return;
      }
      this.firehose.attach(ws, raw === null ? undefined : Number(raw));
    });
  }

  /** Asks a relay to crawl this host (POST com.atproto.sync.requestCrawl with our hostname). */
  async requestCrawl(relayUrl: string): Promise<number> {
    const res = await fetch(new URL('/xrpc/com.atproto.sync.requestCrawl', relayUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ hostname: this.hostname }),
    });
    await res.arrayBuffer();
    return res.status;
  }

  // --- accounts ---------------------------------------------------------

  /** A signing key from the host's seeded PRNG, so a seed reproduces the same identities. */
  newKeypair(): Keypair {
    for (;;) {
      try {
        return Keypair.fromPrivateKey(this.keyAlg, this.prng.bytes(32));
      } catch {
        // out of the curve's range (probability ~2^-128 for k256): draw again
      }
    }
  }

  account(did: string): HostedAccount {
    const a = this.accounts.get(did);
    if (!a) throw new Error(`${did} is not hosted on ${this.name}`);
    return a;
  }

  /** Creates an account: DID document in the PLC, first commit; emits #identity, #account, #commit. */
  createAccount(opts: { handle?: string; did?: string } = {}): HostedAccount {
    this.emitQueued();
    const signer = this.newKeypair();
    const handle = opts.handle ?? `u${this.handleCounter++}${this.userDomain}`;
    const entry = this.plc.create({
      did: opts.did,
      handle,
      signingKey: formatMultikey(signer.publicKey),
      pds: this.url,
    });
    const account: HostedAccount = {
      did: entry.did,
      handle,
      signer,
      repo: new SimRepo(entry.did, signer, this.clock),
      status: 'active',
      index: new RecordIndex(),
    };
    this.accounts.set(account.did, account);
    this.publishNow(this.identityFrame(account));
    this.publishNow(this.accountFrame(account));
    // like a PDS, the first commit has an empty tree
    this.publishNow(this.commitEvent(account, [], []));
    return account;
  }

  /** Applies writes as one commit and emits it (#commit); commit faults armed on the host apply. */
  writeRecords(did: string, writes: RepoWrite[]): EmittedEvent {
    this.emitQueued();
    const q = this.makeCommit(this.account(did), writes);
    return this.publishNow(q);
  }

  /** One random plausible write (create post/like/follow, update profile, delete). */
  writeRecord(did: string): EmittedEvent {
    return this.writeRecords(did, [this.randomWriteFor(this.account(did))]);
  }

  /** Random writes as the generator makes them (sometimes several ops in one commit). */
  writeRandomBatch(did: string): EmittedEvent {
    this.emitQueued();
    const a = this.account(did);
    return this.publishNow(this.makeCommit(a, this.randomBatchFor(a)));
  }

  randomWriteFor(account: HostedAccount): RepoWrite {
    return randomWrite({
      prng: this.prng,
      handle: account.handle,
      index: account.index,
      nextRkey: () => this.clock.next(),
      otherDid: () => this.otherDid(account.did),
    });
  }

  private otherDid(self: string): string {
    const entries = this.plc.entries;
    if (entries.size < 2) return self;
    // any DID will do for a follow subject; the PLC map is insertion ordered, take a random-ish one cheaply
    const dids = this.accounts.size > 1 ? this.accounts : entries;
    const n = this.prng.int(Math.min(dids.size, 64));
    let i = 0;
    for (const k of dids.keys()) if (i++ === n) return k;
    return self;
  }

  changeHandle(did: string, handle: string): EmittedEvent {
    this.emitQueued();
    const a = this.account(did);
    a.handle = handle;
    this.plc.update(did, { handle });
    return this.publishNow(this.identityFrame(a));
  }

  /** A new signing key in the DID document (and for future commits); emits #identity. */
  rotateSigningKey(did: string): EmittedEvent {
    this.emitQueued();
    const a = this.account(did);
    a.signer = this.newKeypair();
    this.plc.update(did, { signingKey: formatMultikey(a.signer.publicKey) });
    return this.publishNow(this.identityFrame(a));
  }

  deactivate(did: string): EmittedEvent {
    return this.setStatus(did, 'deactivated');
  }

  takedown(did: string): EmittedEvent {
    return this.setStatus(did, 'takendown');
  }

  suspend(did: string): EmittedEvent {
    return this.setStatus(did, 'suspended');
  }

  /** Deletes the account on this host (#account deleted); the repo is gone. */
  deleteAccount(did: string): EmittedEvent {
    const ev = this.setStatus(did, 'deleted');
    return ev;
  }

  /** Back to active (after deactivation, takedown or suspension): emits #identity, #account, #sync like a PDS. */
  activate(did: string): EmittedEvent[] {
    this.emitQueued();
    const a = this.account(did);
    if (a.status === 'deleted') throw new Error(`${did} was deleted`);
    a.status = 'active';
    return [
      this.publishNow(this.identityFrame(a)),
      this.publishNow(this.accountFrame(a)),
      this.publishNow(this.syncFrame(a)),
    ];
  }

  private setStatus(did: string, status: AccountStatus): EmittedEvent {
    this.emitQueued();
    const a = this.account(did);
    a.status = status;
    return this.publishNow(this.accountFrame(a));
  }

  /**
   * Changes the account's status without emitting #account: the event a
   * relay missed (for reconciliation tests). getRepoStatus and listRepos
   * answer with the new status.
   */
  setStatusSilently(did: string, status: Exclude<AccountStatus, 'deleted'>): void {
    this.account(did).status = status;
  }

  /** Emits #sync with the account's current commit (what a PDS does after a repo import or to reset a relay). */
  emitSync(did: string): EmittedEvent {
    this.emitQueued();
    return this.publishNow(this.syncFrame(this.account(did)));
  }

  /** Emits #identity for the account (e.g. after an out-of-band DID document change). */
  emitIdentity(did: string): EmittedEvent {
    this.emitQueued();
    return this.publishNow(this.identityFrame(this.account(did)));
  }

  /** Takes an account that arrives from another host (migration); it stays deactivated until activate(). */
  adoptAccount(a: Omit<HostedAccount, 'status'>): HostedAccount {
    const account: HostedAccount = { ...a, status: 'deactivated' };
    this.accounts.set(a.did, account);
    return account;
  }

  /** Applies writes as a commit that no event announces (the state a #sync will later point at). */
  applyUnannounced(did: string, writes: RepoWrite[]): CommitResult {
    const a = this.account(did);
    const r = a.repo.applyWrites(writes, { signer: a.signer });
    for (const w of writes) a.index.apply(w);
    return r;
  }

  // --- faults ------------------------------------------------------------

  /** Arms a fault: the next `count` events (commits, for commit faults) come out bad that way. */
  injectFault(kind: FaultKind, opts: FaultOptions & { count?: number } = {}): void {
    this.faults.arm(kind, opts.count ?? 1, opts);
  }

  /** Destroys every subscriber socket now, without a close frame. */
  disconnectAll(): number {
    return this.firehose.terminateAll();
  }

  /**
   * Wedges every open subscribeRepos stream: sockets stay open and answer
   * pings, but no more events are sent on them while the host keeps writing.
   * A new subscription (a reconnect from the cursor) is served normally.
   */
  stallStreams(): number {
    return this.firehose.stallAll();
  }

  // --- queued (pre-generated) events --------------------------------------

  get queued(): number {
    return this.queue.length - this.queueHead;
  }

  /** Queues an event, its frame sealed ahead for the seq it will get when the queue reaches it. */
  private enqueue(ev: QueuedEvent): void {
    presealFrame(ev.frame, this.firehose.head + this.queued + 1);
    this.queue.push(ev);
  }

  /** Makes a random write for the account and queues its #commit for a later emitQueued. */
  queueRandomWrite(did: string): void {
    const a = this.account(did);
    this.enqueue(this.makeCommit(a, this.randomBatchFor(a)));
  }

  /** Usually one write; sometimes (5%) a batch of 2–5 on distinct paths, as multi-op commits occur on real PDSes. */
  randomBatchFor(a: HostedAccount): RepoWrite[] {
    const first = this.randomWriteFor(a);
    if (this.prng.next() >= this.multiWriteShare) return [first];
    const n = 2 + this.prng.int(4);
    const batch = [first];
    const paths = new Set([`${first.collection}/${first.rkey}`]);
    for (let i = 1; i < n; i++) {
      const w = this.randomWriteFor(a);
      const path = `${w.collection}/${w.rkey}`;
      if (paths.has(path)) continue;
      paths.add(path);
      batch.push(w);
    }
    return batch;
  }

  /** Changes the account's status now and queues the #account event (the generator's deactivate/reactivate). */
  queueStatus(did: string, status: AccountStatus): void {
    const a = this.account(did);
    a.status = status;
    this.enqueue(this.accountFrame(a));
  }

  /** Queues a #sync for the account's current commit. */
  queueSync(did: string): void {
    this.enqueue(this.syncFrame(this.account(did)));
  }

  /** Changes the handle now (PLC included) and queues the #identity event. */
  queueHandleChange(did: string, handle: string): void {
    const a = this.account(did);
    a.handle = handle;
    this.plc.update(did, { handle });
    this.enqueue(this.identityFrame(a));
  }

  /** Emits up to `max` queued events (all by default); returns how many, and collects them into `out` if given. */
  emitQueued(max = Number.POSITIVE_INFINITY, out?: EmittedEvent[]): number {
    let n = 0;
    while (n < max && this.queueHead < this.queue.length) {
      const q = this.queue[this.queueHead];
      this.queue[this.queueHead++] = undefined as unknown as QueuedEvent;
      const ev = this.publishNow(q);
      if (out) out.push(ev);
      n++;
    }
    if (this.queueHead === this.queue.length) {
      this.queue = [];
      this.queueHead = 0;
    } else if (this.queueHead > 4096 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
    return n;
  }

  // --- making events ------------------------------------------------------

  private makeCommit(a: HostedAccount, writes: RepoWrite[]): QueuedEvent {
    if (a.status !== 'active') throw new Error(`${a.did} is ${a.status} on ${this.name}`);
    const faults = this.faults.takeCommitFaults(this.prng);
    return this.commitEvent(a, writes, faults);
  }

  private commitEvent(
    a: HostedAccount,
    writes: RepoWrite[],
    faults: { kind: CommitFault; opts: FaultOptions }[],
  ) {
    const kinds = faults.map((f) => f.kind);
    const opts: { signer?: Keypair; highS?: boolean; rev?: string } = { signer: a.signer };
    const prevHead = a.repo.head();
    for (const f of faults) {
      if (f.kind === 'wrongKey') opts.signer = this.newKeypair();
      else if (f.kind === 'highS') opts.highS = true;
      else if (f.kind === 'futureRev') opts.rev = tidFromTime(Date.now() + 3_600_000, 1);
      else if (f.kind === 'revRollback' && prevHead)
        opts.rev = tidFromTime(tidTimestampMs(prevHead.rev) - 1000, 1);
      else if (f.kind === 'wrongHost') this.plc.update(a.did, { pds: f.opts.pds ?? 'http://127.0.0.1:1' });
      else if (f.kind === 'skippedCommit') {
        // a commit the relay never hears about: the emitted one's since/prevData skip over it
        const w = this.randomWriteFor(a);
        a.repo.applyWrites([w], { signer: a.signer });
        a.index.apply(w);
      }
    }
    const result = a.repo.applyWrites(writes, opts);
    for (const w of writes) a.index.apply(w);
    let prevData = result.prevData;
    if (kinds.includes('brokenPrevData')) prevData = cidForCbor(this.prng.bytes(16));
    const q: QueuedEvent = {
      frame: this.commitFrame(result, prevData),
      rev: result.rev,
      commit: result.commitCid,
    };
    if (kinds.length) q.faults = kinds;
    return q;
  }

  private commitFrame(r: CommitResult, prevData: Cid | null): PreparedFrame {
    return prepareFrame('#commit', r.did, {
      repo: r.did,
      commit: r.commitCid,
      rev: r.rev,
      since: r.since,
      blocks: r.blocks,
      ops: r.ops.map((op) =>
        op.prev
          ? { action: op.action, path: op.path, cid: op.cid, prev: op.prev }
          : { action: op.action, path: op.path, cid: op.cid },
      ),
      blobs: [],
      prevData: prevData ?? undefined,
      rebase: false,
      tooBig: false,
      time: new Date().toISOString(),
    });
  }

  identityFrame(a: HostedAccount): QueuedEvent {
    return {
      frame: prepareFrame('#identity', a.did, {
        did: a.did,
        handle: a.handle,
        time: new Date().toISOString(),
      }),
    };
  }

  accountFrame(a: HostedAccount): QueuedEvent {
    const active = a.status === 'active';
    return {
      frame: prepareFrame('#account', a.did, {
        did: a.did,
        active,
        status: active ? undefined : a.status,
        time: new Date().toISOString(),
      }),
    };
  }

  syncFrame(a: HostedAccount): QueuedEvent {
    const head = a.repo.head();
    if (!head) throw new Error(`${a.did} has no commit`);
    return {
      frame: prepareFrame('#sync', a.did, {
        did: a.did,
        rev: head.rev,
        blocks: a.repo.syncBlocks(),
        time: new Date().toISOString(),
      }),
      rev: head.rev,
      commit: head.commitCid,
    };
  }

  private publishNow(q: QueuedEvent): EmittedEvent {
    const transport = this.faults.takeTransportFaults(this.prng);
    const nextSeq = this.firehose.head + 1;
    for (const f of transport) this.sendTransportFault(f.kind, f.opts, q, nextSeq);
    const ev = this.firehose.publish(q.frame);
    this.counts[q.frame.t]++;
    const out: EmittedEvent = { seq: ev.seq, t: q.frame.t, did: q.frame.did };
    if (q.rev) out.rev = q.rev;
    if (q.commit) out.commit = q.commit;
    if (q.faults) {
      out.faults = q.faults;
      for (const kind of q.faults) this.faults.log.push({ kind, seq: ev.seq, did: ev.did, rev: q.rev });
    }
    return out;
  }

  private sendTransportFault(kind: TransportFault, opts: FaultOptions, q: QueuedEvent, seq: number): void {
    if (kind === 'abruptDisconnect') this.firehose.terminateAll();
    else if (kind === 'malformedCbor') this.firehose.sendRaw(malformedCborFrame());
    else if (kind === 'truncatedFrame') this.firehose.sendRaw(truncateFrame(sealFrame(q.frame, seq)));
    else if (kind === 'oversizedFrame')
      this.firehose.sendRaw(oversizedCommitFrame(q.frame.did, seq, q.rev ?? this.clock.next(), opts.size));
    this.faults.log.push({ kind, seq, did: q.frame.did });
  }
}
