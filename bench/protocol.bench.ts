// Protocol hot-path benchmarks: decoding a realistic ~3 KB #commit frame
// (frame header + body DAG-CBOR, then the CAR in `blocks` with every block
// hash checked) and the other per-event costs. Cases are a flat list of
// named functions; add new ones (signature check, MST proof) to `cases`.
// Run: npm run bench:protocol [-- --seconds=2]

import { fromUint8Array } from '@atcute/car';
import { decode as atcuteDecode, encode as atcuteEncode } from '@atcute/cbor';
import { type CommitResult, SimRepo } from '../sim/repo.ts';
import { checkFrame } from '../src/ingest/frame-check.ts';
import { ownedCopy, SEQ_HEADROOM, utf8Encode } from '../src/protocol/bytes.ts';
import { readCar, writeCar } from '../src/protocol/car.ts';
import { decodeCbor, encodeCbor } from '../src/protocol/cbor.ts';
import { type Cid, CidLinkWrapper, cidForCbor, cidForRaw, cidMatchesBlock } from '../src/protocol/cid.ts';
import { decodeCommit, unsignedCommitBytes, verifyCommitSignature } from '../src/protocol/commit.ts';
import { parseEventBody } from '../src/protocol/events.ts';
import { decodeFrame, encodeFrame, readFrameSeq, rewriteSeq, seqWriter } from '../src/protocol/frames.ts';
import { Keypair, verifySignature } from '../src/protocol/keys.ts';
import { Mst } from '../src/protocol/mst.ts';
import { verifyCommitProof } from '../src/protocol/mst-proof.ts';
import { TidClock } from '../src/protocol/tid.ts';
import { DEFAULT_MAX_REV_SKEW_MS as maxRevSkewMs, verifyFrame } from '../src/validate/verify-frame.ts';
import { type BenchResult, bench, printTable } from './harness.ts';

const did = 'did:plc:ewvi7nxzyoun6zhxrhs64oiz';
const seeded = (n: number, seed: number) =>
  Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 17) & 0xff);

/** A ~3 KB #commit frame: signed commit, 4 MST nodes, 4 records (2 creates, 1 update, 1 like). */
export function sampleCommitFrame(): { frame: Uint8Array; blockCount: number } {
  const blocks: Array<[Cid, Uint8Array]> = [];
  const add = (value: unknown): Cid => {
    const bytes = encodeCbor(value);
    const cid = cidForCbor(bytes);
    blocks.push([cid, bytes]);
    return cid;
  };
  const createdAt = '2024-11-05T12:34:56.789Z';
  const records = [
    add({
      $type: 'app.bsky.feed.post',
      text: 'A reasonably long post about relays, firehoses and the joys of content addressing. '.repeat(3),
      langs: ['en'],
      createdAt,
      embed: {
        $type: 'app.bsky.embed.images',
        images: [
          {
            alt: 'a picture',
            image: { $type: 'blob', ref: cidForRaw(seeded(10, 1)), mimeType: 'image/jpeg', size: 123456 },
            aspectRatio: { width: 1200, height: 800 },
          },
        ],
      },
    }),
    add({
      $type: 'app.bsky.feed.post',
      text: 'reply text, shorter',
      createdAt,
      reply: {
        root: { uri: `at://${did}/app.bsky.feed.post/3l7aaaaaaaaaa`, cid: cidForCbor(seeded(5, 2)).$link },
        parent: { uri: `at://${did}/app.bsky.feed.post/3l7aaaaaaaaab`, cid: cidForCbor(seeded(5, 3)).$link },
      },
    }),
    add({
      $type: 'app.bsky.actor.profile',
      displayName: 'Alice',
      description: 'Bio of moderate length describing Alice and her interests in decentralised social media.',
    }),
    add({
      $type: 'app.bsky.feed.like',
      subject: { uri: `at://${did}/app.bsky.feed.post/3l7cccccccccc`, cid: cidForCbor(seeded(5, 4)).$link },
      createdAt,
    }),
  ];
  const entry = (k: string, v: Cid, t: Cid | null, p: number) => ({ k: utf8Encode(k), p, t, v });
  const leaf1 = add({
    l: null,
    e: [
      entry('app.bsky.feed.like/3l7abcdefgh22', records[3], null, 0),
      entry('post/3l7abcdefgh23', records[0], null, 11),
      entry('3l7abcdefgh24', records[1], null, 16),
    ],
  });
  const leaf2 = add({ l: null, e: [entry('app.bsky.actor.profile/self', records[2], null, 0)] });
  const inner = add({
    l: leaf1,
    e: [
      entry('app.bsky.feed.post/3l7abcdefgh30', cidForCbor(seeded(8, 5)), leaf2, 0),
      entry('3l7abcdefgh40', cidForCbor(seeded(8, 6)), null, 19),
    ],
  });
  const root = add({
    l: inner,
    e: [entry('app.bsky.graph.follow/3l7zzzz', cidForCbor(seeded(8, 7)), null, 0)],
  });
  const commit = add({ did, version: 3, data: root, rev: '3l7abcdefgh2z', prev: null, sig: seeded(64, 8) });
  blocks.unshift(blocks.pop()!);
  const car = writeCar([commit], blocks);
  const frame = encodeFrame('#commit', {
    seq: 1234567890,
    rebase: false,
    tooBig: false,
    repo: did,
    commit,
    rev: '3l7abcdefgh2z',
    since: '3l7abcdefgh2y',
    blocks: car,
    ops: [
      { action: 'create', path: 'app.bsky.feed.post/3l7abcdefgh23', cid: records[0] },
      { action: 'create', path: 'app.bsky.feed.post/3l7abcdefgh24', cid: records[1] },
      {
        action: 'update',
        path: 'app.bsky.actor.profile/self',
        cid: records[2],
        prev: cidForCbor(seeded(6, 9)),
      },
      { action: 'create', path: 'app.bsky.feed.like/3l7abcdefgh22', cid: records[3] },
    ],
    blobs: [cidForRaw(seeded(10, 1))],
    prevData: cidForCbor(seeded(6, 10)),
    time: '2024-11-05T12:34:57.001Z',
  });
  return { frame, blockCount: blocks.length };
}

/**
 * Real signed commits from a repo of `records` records (so the MST has a
 * realistic depth): each is a single-record create, the common case.
 */
export function realCommits(alg: 'k256' | 'p256', records: number, count: number) {
  const key = Keypair.generate(alg);
  const repo = new SimRepo(did, key, new TidClock({ clockId: 1 }));
  const batch = 200;
  for (let i = 0; i < records; i += batch) {
    const writes = [];
    for (let j = i; j < Math.min(records, i + batch); j++) {
      writes.push({
        action: 'create' as const,
        collection: j % 3 === 0 ? 'app.bsky.feed.like' : 'app.bsky.feed.post',
        rkey: `3l${j.toString(36).padStart(11, '0')}`,
        record: { text: `record ${j}`, createdAt: '2024-11-05T12:34:56.789Z' },
      });
    }
    repo.applyWrites(writes);
  }
  const out: CommitResult[] = [];
  for (let i = 0; i < count; i++) {
    out.push(
      repo.applyWrites([
        {
          action: 'create',
          collection: 'app.bsky.feed.post',
          rkey: `3z${i.toString(36).padStart(11, '0')}`,
          record: { text: `new post ${i} `.repeat(8), createdAt: '2024-11-05T12:34:56.789Z' },
        },
      ]),
    );
  }
  return { key, commits: out };
}

/** The whole CPU path of one #commit: decode, CAR with hash checks, commit, signature, sync 1.1 proof. */
function verifyFully(frame: Uint8Array, key: Keypair): boolean {
  const f = decodeFrame(frame);
  const ev = parseEventBody('#commit', f.body);
  if (ev.kind !== 'commit') throw new Error('unexpected');
  const e = ev.event;
  const car = readCar(e.blocks);
  const commitBytes = car.blocks.get(e.commit);
  if (!commitBytes) throw new Error('commit block missing');
  const commit = decodeCommit(commitBytes);
  if (!verifyCommitSignature(commit, key.publicKey)) throw new Error('bad signature');
  const proof = verifyCommitProof({
    blocks: car.blocks,
    dataRoot: commit.data,
    prevData: e.prevData ?? null,
    ops: e.ops,
  });
  if (!proof.ok) throw new Error(proof.reason);
  return true;
}

export function commitFrame(c: CommitResult, seq: number): Uint8Array {
  return encodeFrame('#commit', {
    seq,
    rebase: false,
    tooBig: false,
    repo: c.did,
    commit: c.commitCid,
    rev: c.rev,
    since: c.since,
    blocks: c.blocks,
    ops: c.ops.map((op) => (op.prev ? op : { action: op.action, path: op.path, cid: op.cid })),
    blobs: [],
    prevData: c.prevData ?? undefined,
    time: '2024-11-05T12:34:57.001Z',
  });
}

function main(): void {
  const arg = process.argv.find((a) => a.startsWith('--seconds='));
  const seconds = arg ? Number(arg.slice('--seconds='.length)) : 1;
  // --only=TEXT runs just the cases whose name contains TEXT (e.g. under node --cpu-prof)
  const only = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length);
  const { frame, blockCount } = sampleCommitFrame();
  const { body } = decodeFrame(frame);
  const car = body.blocks as Uint8Array;
  const headerLength = encodeCbor({ op: 1, t: '#commit' }).length;
  const bodyBytes = frame.subarray(headerLength);
  const atcuteBody = atcuteDecode(bodyBytes);
  const checked = checkFrame(frame);
  const seqSpan = checked.ok && checked.op === 1 ? checked.seqSpan : undefined;
  console.log(`sample #commit frame: ${frame.length} bytes, CAR ${car.length} bytes, ${blockCount} blocks\n`);

  const cases: Array<[string, () => unknown]> = [
    [
      'full decode: frame + shape + readCar (hash-checked)',
      () => {
        const f = decodeFrame(frame);
        const ev = parseEventBody('#commit', f.body);
        if (ev.kind !== 'commit') throw new Error('unexpected');
        return readCar(ev.event.blocks);
      },
    ],
    ['decodeFrame', () => decodeFrame(frame)],
    ['readCar (hash-checked)', () => readCar(car)],
    [
      '@atcute/car fromUint8Array + hash checks',
      () => {
        const reader = fromUint8Array(car);
        const map = new Map<string, Uint8Array>();
        for (const e of reader) {
          const cid = new CidLinkWrapper(e.cid.bytes);
          if (!cidMatchesBlock(cid, e.bytes)) throw new Error('mismatch');
          map.set(Buffer.from(e.cid.bytes).toString('latin1'), e.bytes);
        }
        return map;
      },
    ],
    ['body: decodeCbor (atcute + unwrap walk)', () => decodeCbor(bodyBytes)],
    ['body: atcute decode only (no unwrap)', () => atcuteDecode(bodyBytes)],
    ['body: encodeCbor (wrap walk + atcute)', () => encodeCbor(body)],
    ['body: atcute encode only (no wrap)', () => atcuteEncode(atcuteBody)],
    ['rewriteSeq', () => rewriteSeq(frame, 9876543210)],
    ['rewriteSeq at the span ingest found (checkFrame)', () => rewriteSeq(frame, 9876543210, seqSpan)],
    // in place, as a frame back from a verify worker is (ingest's copy has SEQ_HEADROOM
    // free bytes before the frame); alternating widths so the prefix moves each call
    (() => {
      const write = seqWriter(ownedCopy(frame, SEQ_HEADROOM), seqSpan, true);
      let flip = false;
      return [
        'seqWriter in place (relay seq width changes each call)',
        () => {
          flip = !flip;
          return write(flip ? 9876543210 : 98765);
        },
      ] as [string, () => unknown];
    })(),
    ['readFrameSeq', () => readFrameSeq(frame)],
  ];

  // Signatures and the sync 1.1 proof, on real commits of a 10,000-record repo.
  const msg = utf8Encode('x'.repeat(200));
  for (const alg of ['k256', 'p256'] as const) {
    const { key, commits } = realCommits(alg, 10_000, 256);
    const frames = commits.map((c, i) => commitFrame(c, i + 1));
    const avg = Math.round(frames.reduce((n, f) => n + f.length, 0) / frames.length);
    const sig = key.sign(msg);
    const decoded = commits.map((c) => {
      const car = readCar(c.blocks);
      return { c, car, commit: decodeCommit(c.commitBytes) };
    });
    const nowMs = Date.now();
    let i = 0;
    const next = <T>(arr: T[]): T => arr[i++ & 255];
    cases.push(
      [`${alg}: verifySignature (200-byte message)`, () => verifySignature(key.publicKey, msg, sig)],
      [`${alg}: verifyCommitSignature`, () => verifyCommitSignature(next(decoded).commit, key.publicKey)],
      [
        `${alg}: unsignedCommitBytes (the signed message, encoded)`,
        () => unsignedCommitBytes(next(decoded).commit),
      ],
      [
        `${alg}: verifyCommitProof (10k-record repo)`,
        () => {
          const d = next(decoded);
          return verifyCommitProof({
            blocks: d.car.blocks,
            dataRoot: d.commit.data,
            prevData: d.c.prevData,
            ops: d.c.ops,
          });
        },
      ],
      [`${alg}: full #commit verification (~${avg} B frames)`, () => verifyFully(next(frames), key)],
      [
        `${alg}: verifyFrame, the worker's whole job (~${avg} B frames)`,
        () => {
          const r = verifyFrame({
            type: '#commit',
            frame: next(frames),
            key: key.publicKey,
            nowMs,
            maxRevSkewMs,
          });
          if (!r.ok || r.sig !== 'ok' || r.proof !== 'ok') throw new Error('verifyFrame failed');
          return r;
        },
      ],
    );
    if (alg === 'k256') {
      // The proof check's first half alone: open the commit's partial tree and
      // walk to the changed key (decoding and validating each node on the path).
      cases.push([
        'Mst.load + get of the changed key (10k-record repo)',
        () => {
          const d = next(decoded);
          return Mst.load(d.car.blocks, d.commit.data).get(d.c.ops[0].path);
        },
      ]);
    }
  }
  const results: BenchResult[] = [];
  for (const [name, fn] of cases)
    if (!only || name.includes(only)) results.push(bench(name, fn, { seconds }));
  printTable(results);
}

if (process.argv[1]?.endsWith('protocol.bench.ts')) main();
