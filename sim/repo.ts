// An in-memory atproto repository for the simulated network and tests: it
// applies record writes to an MST, signs a v3 commit per batch and produces
// everything a PDS would emit for it — the `#commit` fields (ops with `prev`,
// `since`, `prevData`) and the CAR of blocks a relay needs to verify the
// commit by inversion (commit block, new MST nodes, the covering proof of
// every changed key, new record blocks). Only dirty MST nodes are re-hashed
// per commit, so generating hundreds of thousands of commits stays cheap.
// Fault knobs (another signer, a high-S signature, a forced rev) let the
// simulator produce commits a relay must reject.
import { BlockMap, writeCar } from '../src/protocol/car.ts';
import { encodeCbor } from '../src/protocol/cbor.ts';
import { type Cid, cidForCbor } from '../src/protocol/cid.ts';
import { signCommit } from '../src/protocol/commit.ts';
import type { Keypair } from '../src/protocol/keys.ts';
import { Mst } from '../src/protocol/mst.ts';
import { commitProofBlocks } from '../src/protocol/mst-proof.ts';

export interface RepoWrite {
  action: 'create' | 'update' | 'delete';
  collection: string;
  rkey: string;
  record?: Record<string, unknown>;
}

export interface RepoOp {
  action: 'create' | 'update' | 'delete';
  path: string;
  cid: Cid | null;
  prev?: Cid;
}

export interface CommitResult {
  did: string;
  rev: string;
  since: string | null;
  commitCid: Cid;
  commitBytes: Uint8Array;
  dataCid: Cid;
  prevData: Cid | null;
  ops: RepoOp[];
  /** CAR for the `#commit` blocks field: commit block, proof MST nodes, new record blocks; root = commit. */
  blocks: Uint8Array;
}

export interface ApplyWritesOptions {
  /** Sign with this key instead of the repo's (a wrong-key fault). */
  signer?: Keypair;
  /** Emit the high-S twin of the signature (a malleability fault). */
  highS?: boolean;
  /** Use this rev instead of the clock's next one (replay / out-of-order faults). */
  rev?: string;
}

/** What the repo needs from the TID clock (`TidClock` from src/protocol/tid.ts fits). */
export interface RevClock {
  next(): string;
}

interface Head {
  rev: string;
  commitCid: Cid;
  commitBytes: Uint8Array;
  dataCid: Cid;
}

export class SimRepo {
  private readonly tree = Mst.empty();
  private readonly recordBlocks = new Map<string, [Cid, Uint8Array]>();
  private readonly collectionCounts = new Map<string, number>();
  private current: Head | null = null;

  constructor(
    readonly did: string,
    private readonly signer: Keypair,
    private readonly clock: RevClock,
  ) {}

  /**
   * Applies one batch of writes as one signed commit. Throws (leaving the
   * repo unchanged) if a write is impossible: creating an existing record,
   * updating or deleting a missing one, or touching a path twice.
   */
  applyWrites(writes: RepoWrite[], opts: ApplyWritesOptions = {}): CommitResult {
    const prepared = this.prepare(writes);
    const ops: RepoOp[] = [];
    const newBlocks = new BlockMap();
    for (const w of prepared) {
      if (w.action === 'delete') {
        const prev = this.tree.delete(w.path);
        this.recordBlocks.delete(w.path);
        this.countCollection(w.collection, -1);
        ops.push({ action: 'delete', path: w.path, cid: null, prev });
        continue;
      }
      const cid = w.cid!;
      const prev = this.tree.put(w.path, cid);
      this.recordBlocks.set(w.path, [cid, w.bytes!]);
      newBlocks.set(cid, w.bytes!);
      if (w.action === 'create') {
        this.countCollection(w.collection, 1);
        ops.push({ action: 'create', path: w.path, cid });
      } else {
        ops.push({ action: 'update', path: w.path, cid, prev: prev! });
      }
    }

    const mstBlocks = new BlockMap();
    const dataCid = this.tree.rootCid((cid, bytes) => mstBlocks.set(cid, bytes));
    for (const [cid, bytes] of commitProofBlocks(
      this.tree,
      prepared.map((w) => w.path),
    ))
      mstBlocks.set(cid, bytes);
    if (mstBlocks.size === 0) {
      // No changed keys: still ship the root so the commit's tree is readable.
      const [cid, bytes] = this.tree.rootBlock();
      mstBlocks.set(cid, bytes);
    }

    const since = this.current?.rev ?? null;
    const prevData = this.current?.dataCid ?? null;
    const rev = opts.rev ?? this.clock.next();
    const signed = signCommit({ did: this.did, data: dataCid, rev, prev: null }, opts.signer ?? this.signer, {
      highS: opts.highS,
    });
    this.current = { rev, commitCid: signed.cid, commitBytes: signed.bytes, dataCid };

    const carBlocks: Array<[Cid, Uint8Array]> = [[signed.cid, signed.bytes]];
    for (const e of mstBlocks) carBlocks.push(e);
    for (const e of newBlocks) if (!mstBlocks.has(e[0])) carBlocks.push(e);
    return {
      did: this.did,
      rev,
      since,
      commitCid: signed.cid,
      commitBytes: signed.bytes,
      dataCid,
      prevData,
      ops,
      blocks: writeCar([signed.cid], carBlocks),
    };
  }

  head(): { rev: string; commitCid: Cid; dataCid: Cid } | null {
    if (!this.current) return null;
    const { rev, commitCid, dataCid } = this.current;
    return { rev, commitCid, dataCid };
  }

  /** The whole repo as a CAR (root = head commit), as com.atproto.sync.getRepo serves it. */
  exportCar(): Uint8Array {
    const head = this.requireHead();
    const blocks: Array<[Cid, Uint8Array]> = [[head.commitCid, head.commitBytes]];
    const seen = new BlockMap();
    for (const [cid, bytes] of this.tree.nodeBlocks()) {
      if (seen.has(cid)) continue;
      seen.set(cid, bytes);
      blocks.push([cid, bytes]);
    }
    for (const [cid, bytes] of this.recordBlocks.values()) {
      if (seen.has(cid)) continue;
      seen.set(cid, bytes);
      blocks.push([cid, bytes]);
    }
    return writeCar([head.commitCid], blocks);
  }

  /** A CAR holding just the head commit block (root = commit), for a `#sync` event. */
  syncBlocks(): Uint8Array {
    const head = this.requireHead();
    return writeCar([head.commitCid], [[head.commitCid, head.commitBytes]]);
  }

  /** Current records in key order. */
  *records(): Iterable<[path: string, cid: Cid]> {
    yield* this.tree.entries();
  }

  collections(): string[] {
    return [...this.collectionCounts.keys()].sort();
  }

  private requireHead(): Head {
    if (!this.current) throw new Error(`repo ${this.did} has no commit yet`);
    return this.current;
  }

  private countCollection(collection: string, delta: number): void {
    const n = (this.collectionCounts.get(collection) ?? 0) + delta;
    if (n > 0) this.collectionCounts.set(collection, n);
    else this.collectionCounts.delete(collection);
  }

  /** Validates a batch against the current state before anything changes. */
  private prepare(writes: RepoWrite[]): PreparedWrite[] {
    const seen = new Set<string>();
    const out: PreparedWrite[] = [];
    for (const w of writes) {
      const path = `${w.collection}/${w.rkey}`;
      if (seen.has(path)) throw new Error(`duplicate write to ${path}`);
      seen.add(path);
      const exists = this.recordBlocks.has(path);
      if (w.action === 'create' && exists) throw new Error(`record already exists: ${path}`);
      if (w.action !== 'create' && !exists) throw new Error(`no record to ${w.action}: ${path}`);
      if (w.action === 'delete') {
        out.push({ action: 'delete', path, collection: w.collection });
        continue;
      }
      const bytes = encodeCbor(w.record ?? { $type: w.collection });
      out.push({ action: w.action, path, collection: w.collection, bytes, cid: cidForCbor(bytes) });
    }
    // Path syntax is checked by the tree; check it up front so a bad write
    // cannot leave half a batch applied.
    for (const w of out) this.tree.get(w.path);
    return out;
  }
}

interface PreparedWrite {
  action: 'create' | 'update' | 'delete';
  path: string;
  collection: string;
  bytes?: Uint8Array;
  cid?: Cid;
}
