// The fuzz targets: every decoder and peeker on the ingest/validate path, each
// with the seeds it starts from and the one contract the suite holds it to
// (issue 12): an input is either accepted or refused with the function's
// documented error type. Any other throw (a TypeError from a missing check,
// a RangeError from a stack overflow or an allocation), a broken invariant
// between two readers of the same bytes (differential checks below), or an
// input that takes longer than the CPU ceiling (runner.ts) is a failure.
//
// Targets are synchronous and stateless so the runner can call them millions
// of times in a loop; the Validator end to end is asynchronous and has its
// own runner (validator-fuzz.ts).
import assert from 'node:assert/strict';
import { checkFrame, classifyFrame, readControlBody } from '../../src/ingest/frame-check.ts';
import { CarError, indexCar, readCar } from '../../src/protocol/car.ts';
import { CborError, decodeCbor, decodeCborFirst, encodeCbor } from '../../src/protocol/cbor.ts';
import { CborScanError, CborScanner } from '../../src/protocol/cbor-scan.ts';
import { cidForCbor } from '../../src/protocol/cid.ts';
import { EventShapeError, MAX_DID_LENGTH, parseEventBody } from '../../src/protocol/events.ts';
import { decodeFrame, encodeFrame, FrameError, readFrameSeq, rewriteSeq } from '../../src/protocol/frames.ts';
import { DidDocumentError, parseDidDocument } from '../../src/protocol/identity/did-document.ts';
import { InvalidMstError, InvalidMstKeyError, MissingBlockError, Mst } from '../../src/protocol/mst.ts';
import { nodeDecodersForTests } from '../../src/protocol/mst-node.ts';
import { digestRepoCar, RepoCarError } from '../../src/protocol/repo-car.ts';
import { isValidDid } from '../../src/protocol/syntax.ts';
import { peekEventDid } from '../../src/validate/frame-peek.ts';
import { DEFAULT_MAX_REV_SKEW_MS, verifyFrame } from '../../src/validate/verify-frame.ts';
import type { SeedCorpus } from './seeds.ts';

/** A refusal the target documents; anything else that escapes is a failure. */
export type ErrorClass = abstract new (...args: never[]) => Error;

export interface FuzzTarget {
  name: string;
  /** One-line description for the script's --help and failure reports. */
  what: string;
  /** The seeds this target mutates. */
  seeds(corpus: SeedCorpus): Uint8Array[];
  /** The errors the code under test documents for bad input. */
  expected: readonly ErrorClass[];
  /** Runs the code under test on one input; throws an expected error, returns, or fails. */
  run(input: Uint8Array, corpus: SeedCorpus): void;
}

const frameSeeds = (c: SeedCorpus) => c.frames.map((f) => f.frame);
const TEXT = new TextDecoder();
const UTF8 = new TextEncoder();

// The limits the relay scans untrusted CBOR with (and a loose set for the differential check).
const TIGHT_LIMITS = { maxDepth: 8, maxItems: 20_000, maxStringBytes: 5_000_000 };
const LOOSE_LIMITS = {
  maxDepth: 128,
  maxItems: Number.POSITIVE_INFINITY,
  maxStringBytes: Number.POSITIVE_INFINITY,
};

/**
 * True when the bytes may hold a float64 (head 0xfb anywhere): a decoded
 * float cannot be told from an integer when its value is integral, and the
 * encoder writes it back as one (or throws past 2^53), so byte-exact round
 * trips are checked only on inputs without that byte.
 */
const mayHoldFloat = (bytes: Uint8Array): boolean => bytes.includes(0xfb);

const cborDecode: FuzzTarget = {
  name: 'cbor-decode',
  what: 'src/protocol/cbor.ts decodeCbor/decodeCborFirst; what decodes without floats re-encodes to the same bytes',
  seeds: (c) => [...c.cborValues, ...frameSeeds(c)],
  expected: [CborError],
  run(input) {
    let rest: Uint8Array;
    try {
      [, rest] = decodeCborFirst(input);
    } catch (err) {
      if (err instanceof CborError) {
        // decodeCbor must refuse too, with the same type
        assert.throws(() => decodeCbor(input), CborError);
      }
      throw err;
    }
    if (rest.length > 0) {
      assert.throws(() => decodeCbor(input), CborError);
      return;
    }
    const value = decodeCbor(input);
    // strict decoding means canonical input: encoding the value gives the input back
    // (floats excepted: integral floats are written back as integers)
    if (!mayHoldFloat(input))
      assert.deepEqual(Buffer.from(encodeCbor(value)), Buffer.from(input), 'not canonical');
  },
};

const cborScan: FuzzTarget = {
  name: 'cbor-scan',
  what: 'src/protocol/cbor-scan.ts skip/forEachMapEntry; what decodeCbor accepts the scanner must walk to the end',
  seeds: (c) => [...c.cborValues, ...frameSeeds(c)],
  expected: [CborScanError],
  run(input) {
    let decoded = false;
    try {
      decodeCbor(input);
      decoded = true;
    } catch (err) {
      if (!(err instanceof CborError)) throw err;
    }
    if (decoded) {
      const loose = new CborScanner(input, LOOSE_LIMITS);
      assert.equal(loose.skip(), input.length, 'scanner and decoder disagree on where the value ends');
    }
    const s = new CborScanner(input, TIGHT_LIMITS);
    if (s.peekMajor() === 5) {
      s.forEachMapEntry((v) => {
        if (v.peekMajor() === 3) v.readTextPrefix(64);
        v.keyText();
      });
    } else {
      const end = s.skip();
      assert.ok(end <= input.length);
    }
  },
};

const frames: FuzzTarget = {
  name: 'frames',
  what: 'src/protocol/frames.ts decodeFrame, readFrameSeq, rewriteSeq (against a full re-encode)',
  seeds: frameSeeds,
  expected: [FrameError],
  run(input) {
    // readFrameSeq never throws, whatever the bytes
    const peekedSeq = readFrameSeq(input);
    // on any bytes rewriteSeq returns or refuses with FrameError (the runner checks the type)
    const rewrittenAnyway = rewriteSeq(input, 7);
    const { header, body } = decodeFrame(input);
    assert.ok(rewrittenAnyway.length > 0);
    if (typeof body.seq === 'number' && Number.isSafeInteger(body.seq) && body.seq >= 0)
      assert.equal(peekedSeq, body.seq, 'readFrameSeq disagrees with the decoded body');
    const floats = mayHoldFloat(input);
    for (const seq of [0, 23, 24, 255, 256, 65_536, 2 ** 32, Number.MAX_SAFE_INTEGER]) {
      const rewritten = rewriteSeq(input, seq);
      const again = decodeFrame(rewritten);
      assert.deepEqual(again.header, header);
      assert.deepEqual(again.body, { ...body, seq }, `rewriteSeq(${seq}) changed more than seq`);
      assert.equal(readFrameSeq(rewritten), seq);
      if (floats) continue;
      const expected =
        header.op === 1
          ? encodeFrame(header.t, { ...body, seq })
          : Buffer.concat([encodeCbor({ op: -1 }), encodeCbor({ ...body, seq })]);
      assert.deepEqual(
        Buffer.from(rewritten),
        Buffer.from(expected),
        `rewriteSeq(${seq}) differs from a re-encode`,
      );
    }
  },
};

const events: FuzzTarget = {
  name: 'events',
  what: 'src/protocol/events.ts parseEventBody on decoded frames',
  seeds: frameSeeds,
  expected: [FrameError, EventShapeError],
  run(input) {
    const { header, body } = decodeFrame(input);
    if (header.op !== 1) return;
    const parsed = parseEventBody(header.t, body);
    if (parsed.kind === 'commit') assert.ok(isValidDid(parsed.event.repo));
    else if (parsed.kind === 'identity' || parsed.kind === 'account' || parsed.kind === 'sync')
      assert.ok(isValidDid(parsed.event.did));
  },
};

const car: FuzzTarget = {
  name: 'car',
  what: 'src/protocol/car.ts readCar and indexCar, src/protocol/repo-car.ts digestRepoCar',
  seeds: (c) => c.cars,
  expected: [CarError, RepoCarError],
  run(input, corpus) {
    let readOk = true;
    let readCount = -1;
    try {
      const parsed = readCar(input);
      readCount = parsed.blocks.size;
      for (const [cid, bytes] of parsed.blocks) assert.ok(parsed.blocks.get(cid) === bytes);
    } catch (err) {
      if (!(err instanceof CarError)) throw err;
      readOk = false;
    }
    let indexOk = true;
    try {
      const index = indexCar(input, { maxBytes: 64 * 1024 * 1024, maxBlocks: 1_000_000 });
      if (readOk) assert.ok(index.roots.length >= 0 && readCount >= 0);
    } catch (err) {
      if (!(err instanceof CarError)) throw err;
      indexOk = false;
    }
    // the two readers apply the same checks (readCar's limits are the lower ones)
    if (readOk) assert.ok(indexOk, 'readCar accepted a CAR indexCar refused');
    digestRepoCar(input, {
      maxBytes: 64 * 1024 * 1024,
      maxBlocks: 1_000_000,
      did: corpus.didDocuments[0].did,
    });
  },
};

const EMPTY_NODE_CID = cidForCbor(new Uint8Array([0xa2, 0x61, 0x65, 0x80, 0x61, 0x6c, 0xf6]));

const mstNode: FuzzTarget = {
  name: 'mst-node',
  what: 'src/protocol/mst.ts node decoders (fast against generic) and Mst.load over a mutated root',
  seeds: (c) => c.mstNodes,
  expected: [InvalidMstError, InvalidMstKeyError, MissingBlockError],
  run(input) {
    const { fast, generic } = nodeDecodersForTests;
    const got = fast(input, null, null);
    let reference: ReturnType<typeof generic> | undefined;
    try {
      reference = generic(input, EMPTY_NODE_CID, null, null);
    } catch (err) {
      if (!(err instanceof InvalidMstError)) throw err;
    }
    if (got !== null) {
      assert.ok(reference !== undefined, 'fast decoder accepted a node the generic one refuses');
      const { linkAt: _, ...rest } = got;
      assert.deepEqual(rest, reference);
    }
    // the whole tree over this one block: every other block is missing
    const cid = cidForCbor(input);
    const tree = Mst.load({ get: (c) => (c.$link === cid.$link ? input : undefined) }, cid);
    tree.get('app.bsky.feed.post/3kabc');
    for (const _ of tree.entries()) {
      // walks until a missing block
    }
  },
};

const didDocument: FuzzTarget = {
  name: 'did-document',
  what: 'src/protocol/identity/did-document.ts parseDidDocument on mutated JSON',
  seeds: (c) => c.didDocuments.map((d) => UTF8.encode(d.json)),
  expected: [DidDocumentError],
  run(input, corpus) {
    let json: unknown;
    try {
      json = JSON.parse(TEXT.decode(input));
    } catch {
      return; // not JSON: the fetcher refuses it before parsing (InvalidBodyError)
    }
    for (const { did } of corpus.didDocuments) {
      const id = parseDidDocument(json, did);
      assert.equal(id.did, did);
      // the endpoint is kept as written, but it must parse as an http(s) URL with a host
      if (id.pdsEndpoint !== undefined) {
        const url = new URL(id.pdsEndpoint);
        assert.ok((url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '');
      }
    }
  },
};

const frameCheck: FuzzTarget = {
  name: 'frame-check',
  what: 'src/ingest/frame-check.ts checkFrame, classifyFrame, readControlBody (never throw)',
  seeds: frameSeeds,
  expected: [],
  run(input) {
    const checked = checkFrame(input);
    const verdict = classifyFrame(input, true, 0);
    if (!checked.ok) {
      assert.equal(verdict.kind, 'bad');
      return;
    }
    readControlBody(input, checked.bodyStart, 'error');
    readControlBody(input, checked.bodyStart, 'name');
    if (checked.op === 1 && checked.did !== undefined) {
      assert.ok(checked.did.length <= MAX_DID_LENGTH && isValidDid(checked.did));
    }
    if (verdict.kind === 'event') assert.ok(verdict.seq > 0 && isValidDid(verdict.did));
  },
};

const framePeek: FuzzTarget = {
  name: 'frame-peek',
  what: 'src/validate/frame-peek.ts peekEventDid (never throws; only valid DIDs)',
  seeds: frameSeeds,
  expected: [],
  run(input) {
    for (const type of ['#commit', '#identity']) {
      const did = peekEventDid(input, type);
      if (did !== undefined) assert.ok(did.length <= MAX_DID_LENGTH && isValidDid(did));
    }
  },
};

const verify: FuzzTarget = {
  name: 'verify-frame',
  what: 'src/validate/verify-frame.ts verifyFrame (never throws; a result for every frame)',
  seeds: (c) => c.frames.filter((f) => f.type === '#commit' || f.type === '#sync').map((f) => f.frame),
  expected: [],
  run(input) {
    for (const type of ['#commit', '#sync']) {
      const result = verifyFrame({
        type,
        frame: input,
        nowMs: Date.now(),
        maxRevSkewMs: DEFAULT_MAX_REV_SKEW_MS,
      });
      if (result.ok) assert.equal(result.kind, type === '#commit' ? 'commit' : 'sync');
      else assert.equal(typeof result.reason, 'string');
    }
  },
};

export const TARGETS: readonly FuzzTarget[] = [
  cborDecode,
  cborScan,
  frames,
  events,
  car,
  mstNode,
  didDocument,
  frameCheck,
  framePeek,
  verify,
];

export function targetByName(name: string): FuzzTarget {
  const t = TARGETS.find((x) => x.name === name);
  if (!t) throw new Error(`no fuzz target ${name} (targets: ${TARGETS.map((x) => x.name).join(', ')})`);
  return t;
}
