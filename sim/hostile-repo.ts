// Hostile `com.atproto.sync.getRepo` replies for a simulated PDS, to test
// how a relay copes with repo CARs it must not trust: a repo padded with
// hundreds of thousands of tiny blocks (cheap to send, costly to hold
// decoded), CARs over a size limit, and malformed ones (truncated, a block
// that does not match its CID, a commit for another DID). A test sets a
// reply per DID (`pds.hostileRepos.set(did, …)`); the PDS then serves it
// instead of the account's real export (pds-xrpc.ts), computed when the
// request arrives like any other reply (so `xrpcHolds` still applies).
// `setDefault` gives every account of the host one reply (the hostile-host
// knobs in hostile.ts use it with `carBomb`). A reply may be sent in chunks
// (`ChunkedCar`): the same buffer repeated, so a body of hundreds of MB, with
// or without a declared length, costs this process one chunk of memory.
import { concatBytes } from '../src/protocol/bytes.ts';
import { readCar, writeCar } from '../src/protocol/car.ts';
import { type Cid, cidForRaw } from '../src/protocol/cid.ts';

/**
 * A body sent as these chunks in order (a chunk may repeat). `declareLength`:
 * with a Content-Length of their total; otherwise chunked, with no length.
 */
export interface ChunkedCar {
  chunks: Uint8Array[];
  declareLength: boolean;
}

/** What getRepo sends: CAR bytes, or chunks. */
export type HostileRepoBody = Uint8Array | ChunkedCar;

/** A repo CAR to serve for a DID: bytes, or a function of the account's real export. */
export type HostileRepoReply = Uint8Array | ((realCar: Uint8Array) => HostileRepoBody);

/** Per-DID getRepo overrides of one simulated PDS. */
export class HostileRepos {
  private readonly replies = new Map<string, HostileRepoReply>();
  private fallback: HostileRepoReply | null = null;

  set(did: string, reply: HostileRepoReply): void {
    this.replies.set(did, reply);
  }

  delete(did: string): void {
    this.replies.delete(did);
  }

  has(did: string): boolean {
    return this.replies.has(did);
  }

  /** The reply for every account without its own override (null: the real export). */
  setDefault(reply: HostileRepoReply | null): void {
    this.fallback = reply;
  }

  /** The CAR to serve for `did`: its override, the default override, or the real export. */
  serve(did: string, realCar: () => Uint8Array): HostileRepoBody {
    const r = this.replies.get(did) ?? this.fallback;
    if (r === null) return realCar();
    return typeof r === 'function' ? r(realCar()) : r;
  }
}

/** Bytes of one tiny raw block section: varint length, CID, 4 bytes of data. */
const TINY_SECTION = 1 + 36 + 4;

/**
 * `count` distinct raw blocks of 4 bytes each (41 bytes per section), as CAR
 * sections without a header: every one hash-checks, so a reader has to
 * index all of them. `offset` varies the content between calls.
 */
export function tinyBlockSections(count: number, offset = 0): Uint8Array {
  const out = new Uint8Array(count * TINY_SECTION);
  const data = new Uint8Array(4);
  const view = new DataView(data.buffer);
  let p = 0;
  for (let i = 0; i < count; i++) {
    view.setUint32(0, (offset + i) >>> 0);
    const cid = cidForRaw(data);
    out[p++] = 36 + 4;
    out.set(cid.bytes, p);
    p += 36;
    out.set(data, p);
    p += 4;
  }
  return out;
}

/** A valid CAR of `count` tiny raw blocks (roots as given; none by default). */
export function tinyBlocksCar(count: number, roots: Cid[] = []): Uint8Array {
  return concatBytes([writeCar(roots, []), tinyBlockSections(count)]);
}

/**
 * The account's real repo CAR with `count` tiny junk blocks appended: still a
 * valid repo (same signed root commit, same MST) that any reader accepts, but
 * one that costs a decoding reader ~400 bytes of heap per block.
 */
export function padRepoCar(realCar: Uint8Array, count: number): Uint8Array {
  return concatBytes([realCar, tinyBlockSections(count)]);
}

/** The real CAR padded with one junk raw block so the whole is exactly `size` bytes or more. */
export function inflateRepoCar(realCar: Uint8Array, size: number): Uint8Array {
  const pad = Math.max(0, size - realCar.length);
  if (pad === 0) return realCar;
  const data = new Uint8Array(pad + 64); // a few bytes over for the section header
  const cid = cidForRaw(data);
  const section = writeCar([], [[cid, data]]);
  // drop the empty header writeCar put in front (its first byte is the header length)
  return concatBytes([realCar, section.subarray(1 + section[0])]);
}

export type MalformedKind = 'truncated' | 'hash-mismatch' | 'no-root';

/** The real CAR broken in one way a reader must reject. */
export function malformRepoCar(realCar: Uint8Array, kind: MalformedKind): Uint8Array {
  switch (kind) {
    case 'truncated':
      return realCar.subarray(0, realCar.length - 7);
    case 'hash-mismatch': {
      const out = realCar.slice();
      out[out.length - 1] ^= 0xff; // the last block's data no longer matches its CID
      return out;
    }
    case 'no-root': {
      const car = readCar(realCar, { maxBytes: realCar.length });
      const root = car.roots[0];
      return writeCar(
        car.roots,
        [...car.blocks].filter(([cid]) => cid.$link !== root.$link),
      );
    }
  }
}

export const TINY_BLOCK_SECTION_BYTES = TINY_SECTION;

/** CAR bombs a hostile host serves from getRepo (`pds.hostile.carBombs(kind)`). */
export type CarBombKind =
  | 'blocks' // the real repo + `blocks` tiny valid blocks (default 1,100,000: over the relay's 1,000,000 limit)
  | 'declared-size' // the real repo + junk, `bytes` in all (default 129 MiB), with that Content-Length
  | 'endless'; // the real repo + junk, chunked with no Content-Length, `bytes` in all (default 129 MiB)

export interface CarBombOptions {
  /** 'blocks': junk blocks appended (default 1,100,000) */
  blocks?: number;
  /** 'declared-size', 'endless': total body bytes (default 129 MiB) */
  bytes?: number;
}

const paddingCache = new Map<number, Uint8Array>();
let junkSection: Uint8Array | null = null;

/** `count` tiny blocks as CAR sections, built once per count (a million SHA-256s take a second or two). */
function cachedPadding(count: number): Uint8Array {
  let p = paddingCache.get(count);
  if (!p) {
    p = tinyBlockSections(count);
    paddingCache.set(count, p);
  }
  return p;
}

/** One CAR section holding a 1 MiB raw block, built once and repeated as junk. */
function junk(): Uint8Array {
  if (!junkSection) {
    const data = new Uint8Array(1024 * 1024).fill(0x6a);
    const section = writeCar([], [[cidForRaw(data), data]]);
    junkSection = section.subarray(1 + section[0]);
  }
  return junkSection;
}

/**
 * A getRepo reply that is a CAR bomb of `kind`, as a function of the
 * account's real export (so the root commit and MST are real and signed:
 * only the size or the block count is hostile). Cheap to serve repeatedly:
 * the junk is built once and sent by reference.
 */
export function carBomb(kind: CarBombKind, opts: CarBombOptions = {}): (realCar: Uint8Array) => ChunkedCar {
  if (kind === 'blocks') {
    const padding = cachedPadding(opts.blocks ?? 1_100_000);
    return (real) => ({ chunks: [real, padding], declareLength: true });
  }
  const total = opts.bytes ?? 129 * 1024 * 1024;
  const section = junk();
  return (real) => {
    const chunks = [real];
    for (let n = real.length; n < total; n += section.length) chunks.push(section);
    return { chunks, declareLength: kind === 'declared-size' };
  };
}
