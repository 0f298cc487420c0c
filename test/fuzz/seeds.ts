// The fuzz suite's seed corpus: valid inputs of every kind the relay decodes,
// made with the simulator (sim/) so they look like what a real PDS sends.
// Mutating valid inputs reaches far deeper into a decoder than random bytes
// do (a random buffer almost never gets past the first CBOR head), so every
// target starts from these. The corpus is built once, offline (a SimPds that
// never listens, a SimPlc that never listens), deterministically from a seed,
// and is plain data (Uint8Arrays and strings) so the fuzz script can hand it
// to worker threads.

import { SimPds } from '../../sim/pds.ts';
import { SimPlc } from '../../sim/plc.ts';
import { readCar } from '../../src/protocol/car.ts';
import { decodeCbor, encodeCbor } from '../../src/protocol/cbor.ts';
import { encodeErrorFrame, encodeInfoFrame } from '../../src/protocol/frames.ts';

export interface SeedFrame {
  /** Message type from the header (`#commit`, `#info`, `#error` for op -1…). */
  type: string;
  frame: Uint8Array;
}

export interface SeedCorpus {
  /** Whole event-stream frames: #commit, #sync, #identity, #account, #info, error frames. */
  frames: SeedFrame[];
  /** CAR files: repo exports (getRepo) and the `blocks` of #commit/#sync events. */
  cars: Uint8Array[];
  /** MST node blocks (`{l, e}`), taken from the repo exports. */
  mstNodes: Uint8Array[];
  /** DID documents as JSON text, and the DID each was fetched for. */
  didDocuments: { did: string; json: string }[];
  /** Miscellaneous DAG-CBOR values: records, commit blocks, frame headers and bodies. */
  cborValues: Uint8Array[];
}

function isMstNode(v: unknown): boolean {
  return typeof v === 'object' && v !== null && 'e' in v && 'l' in v;
}

/**
 * Builds the corpus: a few accounts on one offline PDS, each with a handful
 * of events of every kind. The same seed gives the same bytes on every run
 * (the simulator reads the wall clock for revs and times, so the clock is
 * fixed while it works), which is what makes `--index` reproduce an input.
 */
export function buildSeedCorpus(seed: number | string = 1): SeedCorpus {
  return withFixedClock(CORPUS_EPOCH_MS, () => build(seed));
}

/** 2025-01-01T00:00:00Z: revs and times of the corpus start here. */
const CORPUS_EPOCH_MS = Date.UTC(2025, 0, 1);

// Replaces the global Date while `fn` runs: `Date.now()` and `new Date()`
// read a clock that starts at `startMs` and advances 1 ms per read.
function withFixedClock<T>(startMs: number, fn: () => T): T {
  const RealDate = Date;
  let t = startMs;
  class FixedDate extends RealDate {
    constructor(...args: unknown[]) {
      if (args.length === 0) super(t++);
      else super(...(args as [number]));
    }
    static override now(): number {
      return t++;
    }
  }
  globalThis.Date = FixedDate as DateConstructor;
  try {
    return fn();
  } finally {
    globalThis.Date = RealDate;
  }
}

function build(seed: number | string): SeedCorpus {
  const plc = new SimPlc(`fuzz-plc:${seed}`);
  const pds = new SimPds({ plc, name: 'fuzz', seed: `fuzz:${seed}` });
  const dids: string[] = [];
  for (let i = 0; i < 3; i++) {
    const did = pds.createAccount().did;
    dids.push(did);
    for (let w = 0; w < 6; w++) pds.writeRandomBatch(did);
  }
  pds.changeHandle(dids[0], 'renamed.fuzz.test');
  pds.rotateSigningKey(dids[1]);
  pds.emitSync(dids[2]);
  pds.deactivate(dids[2]);
  pds.activate(dids[2]);
  pds.emitIdentity(dids[0]);
  // a P-256 account for its DID document (its frames are left out: P-256
  // signatures are randomised, and the corpus must be the same on every run)
  const p256 = new SimPds({ plc, name: 'fuzzp', seed: `fuzz-p256:${seed}`, keyAlg: 'p256' });
  const p256Did = p256.createAccount().did;

  const frames: SeedFrame[] = [];
  for (let s = 1; s <= pds.firehose.head; s++) {
    const frame = pds.firehose.frameAt(s);
    const meta = pds.firehose.eventAt(s);
    if (frame && meta) frames.push({ type: meta.t, frame });
  }
  frames.push({
    type: '#info',
    frame: encodeInfoFrame('OutdatedCursor', 'cursor is older than the backfill'),
  });
  frames.push({ type: '#error', frame: encodeErrorFrame('FutureCursor', 'cursor in the future') });

  const cars: Uint8Array[] = [];
  const mstNodes: Uint8Array[] = [];
  const cborValues: Uint8Array[] = [];
  for (const did of dids) {
    const car = pds.account(did).repo.exportCar();
    cars.push(car);
    for (const [, bytes] of readCar(car, { maxBytes: 64 * 1024 * 1024, maxBlocks: 1_000_000 }).blocks) {
      const value = decodeCbor(bytes);
      if (isMstNode(value)) mstNodes.push(bytes);
      else cborValues.push(bytes);
    }
  }
  for (const { frame } of frames) {
    // split each frame into its header and body values
    const [header, body] = splitFrame(frame);
    cborValues.push(header, body);
    const blocks = (decodeCbor(body) as { blocks?: unknown }).blocks;
    if (blocks instanceof Uint8Array && blocks.length > 0) cars.push(blocks);
  }
  cborValues.push(encodeCbor({ a: [1, -2, 3.5, null, true, false, 'x'], b: new Uint8Array([1, 2, 3]) }));

  const didDocuments = [...dids, p256Did].map((did) => ({ did, json: JSON.stringify(plc.document(did)) }));
  didDocuments.push(...documentVariants(plc.document(dids[0]) as unknown as Record<string, unknown>));
  return { frames, cars, mstNodes: dedupe(mstNodes), didDocuments, cborValues: dedupe(cborValues) };
}

// Shapes the simulated PLC never makes but DID documents in the wild have:
// relative fragment ids, a did:web document, several handles and services,
// a legacy key type, fields of the wrong type.
function documentVariants(doc: Record<string, unknown>): { did: string; json: string }[] {
  const did = doc.id as string;
  const vm = (doc.verificationMethod as Record<string, unknown>[])[0];
  const web = 'did:web:pds.fuzz.example';
  const variants: Record<string, unknown>[] = [
    {
      ...doc,
      verificationMethod: [{ ...vm, id: '#atproto' }],
      alsoKnownAs: ['at://not a handle', 'https://x.example', 'at://second.fuzz.test'],
      service: [
        { id: '#other', type: 'Other', serviceEndpoint: 'https://other.example' },
        {
          id: `${did}#atproto_pds`,
          type: 'AtprotoPersonalDataServer',
          serviceEndpoint: 'https://pds.example/',
        },
      ],
    },
    {
      ...doc,
      verificationMethod: [
        {
          ...vm,
          type: 'EcdsaSecp256k1VerificationKey2019',
          publicKeyMultibase: 'zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF',
        },
      ],
      service: { id: '#atproto_pds' },
      alsoKnownAs: 'at://x.test',
    },
    { ...doc, id: web, verificationMethod: [{ ...vm, id: `${web}#atproto`, controller: web }] },
  ];
  return variants.map((v) => ({ did: v.id as string, json: JSON.stringify(v) }));
}

function splitFrame(frame: Uint8Array): [Uint8Array, Uint8Array] {
  // the header is small and canonical: re-encoding its decoded value gives its exact length
  for (let end = 1; end <= Math.min(frame.length, 64); end++) {
    try {
      decodeCbor(frame.subarray(0, end));
      return [frame.subarray(0, end), frame.subarray(end)];
    } catch {
      // not a complete value yet
    }
  }
  throw new Error('seed frame has no readable header');
}

function dedupe(values: Uint8Array[]): Uint8Array[] {
  const seen = new Set<string>();
  return values.filter((v) => {
    const k = Buffer.from(v).toString('base64');
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
