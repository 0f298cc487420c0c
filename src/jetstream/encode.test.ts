// The Jetstream JSON form of the relay's events (encode.ts) and the
// subscriber filter (filter.ts): message shapes and field order as Jetstream
// sends them, DAG-CBOR → atproto JSON ($link, $bytes, blobs), one text frame
// per operation, what is skipped, and the v1 filter rules (prefixes,
// identity/account bypassing the collection filter, size limit, caps).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { writeCar } from '../protocol/car.ts';
import { encodeCbor } from '../protocol/cbor.ts';
import { cidForCbor, cidForRaw, cidToString } from '../protocol/cid.ts';
import { encodeFrame } from '../protocol/frames.ts';
import { accountFrame, identityFrame } from '../protocol/relay-frames.ts';
import { carBlocks, type EncodedEvent, encodeEvent } from './encode.ts';
import {
  FilterError,
  MAX_WANTED_COLLECTIONS,
  parseOptionsUpdate,
  parseSubscribeQuery,
  SubscriberFilter,
} from './filter.ts';

const DID = 'did:plc:abcdefghijklmnopqrstuvwx';
const OTHER = 'did:plc:zyxwvutsrqponmlkjihgfedc';

/** The JSON texts of an encoded event, unframed (checks the WebSocket text frame headers on the way). */
function texts(e: EncodedEvent): string[] {
  const out: string[] = [];
  for (let i = 0; i < e.messages.length; i++) {
    const frame = e.buf.subarray(e.offsets[i], e.offsets[i + 1]);
    assert.equal(frame[0], 0x81, 'FIN + text opcode');
    const len =
      frame[1] < 126 ? frame[1] : frame[1] === 126 ? frame.readUInt16BE(2) : Number(frame.readBigUInt64BE(2));
    const hdr = frame[1] < 126 ? 2 : frame[1] === 126 ? 4 : 10;
    assert.equal(len, frame.length - hdr);
    assert.equal(len, e.messages[i].jsonBytes);
    out.push(frame.subarray(hdr).toString('utf8'));
  }
  return out;
}

function commitFrame(
  ops: { action: string; path: string; record?: Record<string, unknown> }[],
  includeBlocks = true,
) {
  const blocks: [ReturnType<typeof cidForCbor>, Uint8Array][] = [];
  const wireOps = ops.map((op) => {
    if (!op.record) return { action: op.action, path: op.path, cid: null };
    const bytes = encodeCbor(op.record);
    const cid = cidForCbor(bytes);
    if (includeBlocks) blocks.push([cid, bytes]);
    return { action: op.action, path: op.path, cid };
  });
  const commitBlock = encodeCbor({ did: DID, version: 3 });
  const commitCid = cidForCbor(commitBlock);
  const car = writeCar([commitCid], [[commitCid, commitBlock], ...blocks]);
  return {
    frame: encodeFrame('#commit', {
      seq: 7,
      rebase: false,
      tooBig: false,
      repo: DID,
      commit: commitCid,
      rev: '3l7tqjqmdaa2k',
      since: null,
      blocks: car,
      ops: wireOps,
      blobs: [],
      time: '2026-01-01T00:00:00.000Z',
    }),
    cids: wireOps.map((o) => (o.cid ? cidToString(o.cid) : undefined)),
  };
}

describe('Jetstream JSON encoding', () => {
  it('sends one message per operation, Jetstream field order, records in atproto JSON', () => {
    const blobCid = cidForRaw(new Uint8Array([1, 2, 3]));
    const post = {
      $type: 'app.bsky.feed.post',
      text: 'hello "world" ✓',
      createdAt: '2026-01-01T00:00:00.000Z',
      embed: {
        $type: 'app.bsky.embed.images',
        images: [{ image: { $type: 'blob', ref: blobCid, mimeType: 'image/png', size: 3 } }],
      },
      raw: new Uint8Array([0xde, 0xad, 0xbe, 0xef]),
    };
    const like = { $type: 'app.bsky.feed.like', subject: { uri: 'at://x', cid: cidToString(blobCid) } };
    const { frame, cids } = commitFrame([
      { action: 'create', path: 'app.bsky.feed.post/3l7tqjqmdaa2k', record: post },
      { action: 'update', path: 'app.bsky.feed.like/self', record: like },
      { action: 'delete', path: 'app.bsky.graph.follow/3l7tqjqmdab2k' },
    ]);
    const e = encodeEvent(7, 1_767_225_600_000_123, frame);
    assert.equal(e.seq, 7);
    const t = texts(e);
    assert.equal(t.length, 3);
    const prefix = `{"did":"${DID}","time_us":1767225600000123,"kind":"commit","commit":{"rev":"3l7tqjqmdaa2k","operation":"create","collection":"app.bsky.feed.post","rkey":"3l7tqjqmdaa2k","record":{`;
    assert.ok(t[0].startsWith(prefix), t[0]);
    assert.ok(t[0].endsWith(`},"cid":"${cids[0]}"}}`), t[0]);
    assert.deepEqual(JSON.parse(t[0]).commit.record, {
      $type: 'app.bsky.feed.post',
      text: 'hello "world" ✓',
      createdAt: '2026-01-01T00:00:00.000Z',
      embed: {
        $type: 'app.bsky.embed.images',
        images: [
          { image: { $type: 'blob', ref: { $link: cidToString(blobCid) }, mimeType: 'image/png', size: 3 } },
        ],
      },
      raw: { $bytes: '3q2+7w' },
    });
    const update = JSON.parse(t[1]);
    assert.deepEqual(update.commit, {
      rev: '3l7tqjqmdaa2k',
      operation: 'update',
      collection: 'app.bsky.feed.like',
      rkey: 'self',
      record: like,
      cid: cids[1],
    });
    assert.deepEqual(JSON.parse(t[2]), {
      did: DID,
      time_us: 1767225600000123,
      kind: 'commit',
      commit: {
        rev: '3l7tqjqmdaa2k',
        operation: 'delete',
        collection: 'app.bsky.graph.follow',
        rkey: '3l7tqjqmdab2k',
      },
    });
    assert.deepEqual(
      e.messages.map((m) => [m.kind, m.did, m.collection]),
      [
        ['commit', DID, 'app.bsky.feed.post'],
        ['commit', DID, 'app.bsky.feed.like'],
        ['commit', DID, 'app.bsky.graph.follow'],
      ],
    );
  });

  it('encodes identity and account events like Jetstream (the body, keys sorted)', () => {
    const id = encodeEvent(9, 5, identityFrame(DID, '2026-01-01T00:00:00.000Z', 'alice.test')(9));
    assert.equal(
      texts(id)[0],
      `{"did":"${DID}","time_us":5,"kind":"identity","identity":{"did":"${DID}","handle":"alice.test","seq":9,"time":"2026-01-01T00:00:00.000Z"}}`,
    );
    const acct = encodeEvent(
      10,
      6,
      accountFrame(DID, { active: false, status: 'takendown' }, '2026-01-01T00:00:00.000Z')(10),
    );
    assert.equal(
      texts(acct)[0],
      `{"did":"${DID}","time_us":6,"kind":"account","account":{"active":false,"did":"${DID}","seq":10,"status":"takendown","time":"2026-01-01T00:00:00.000Z"}}`,
    );
  });

  it('sends nothing for #sync, #info and undecodable frames; skips operations without their block', () => {
    const skips: string[] = [];
    const sync = encodeFrame('#sync', { seq: 1, did: DID, rev: 'x', blocks: new Uint8Array(), time: 't' });
    assert.equal(encodeEvent(1, 1, sync).messages.length, 0);
    assert.equal(encodeEvent(1, 1, encodeFrame('#info', { name: 'OutdatedCursor' })).messages.length, 0);
    assert.equal(encodeEvent(1, 1, new Uint8Array([0xff, 0x00]), (r) => skips.push(r)).messages.length, 0);
    const { frame } = commitFrame(
      [
        { action: 'create', path: 'app.bsky.feed.post/a', record: { text: 'x' } },
        { action: 'delete', path: 'app.bsky.feed.post/b' },
      ],
      false,
    );
    const e = encodeEvent(2, 2, frame, (r) => skips.push(r));
    assert.deepEqual(
      texts(e).map((t) => JSON.parse(t).commit.operation),
      ['delete'],
    );
    assert.deepEqual(skips, ['bad_frame', 'missing_block']);
  });

  it('builds only what a prefilter (a replaying subscriber) wants', () => {
    const { frame } = commitFrame([
      { action: 'create', path: 'app.bsky.feed.post/a', record: { text: 'x' } },
      { action: 'create', path: 'app.bsky.graph.follow/b', record: { subject: DID } },
    ]);
    const byCollection = parseOptionsUpdate({ wantedCollections: ['app.bsky.graph.*'] }).prefilter;
    assert.deepEqual(
      encodeEvent(1, 1, frame, undefined, byCollection).messages.map((m) => m.collection),
      ['app.bsky.graph.follow'],
    );
    const otherDid = parseOptionsUpdate({ wantedDids: [OTHER] }).prefilter;
    assert.equal(encodeEvent(1, 1, frame, undefined, otherDid).messages.length, 0);
    const id = identityFrame(DID, 't', 'a.test')(2);
    assert.equal(encodeEvent(2, 2, id, undefined, otherDid).messages.length, 0);
    assert.equal(
      encodeEvent(2, 2, id, undefined, byCollection).messages.length,
      1,
      'identity passes collections',
    );
    assert.equal(parseOptionsUpdate({}).prefilter, undefined);
  });

  it('walks a CAR without trusting its lengths', () => {
    const b = encodeCbor({ a: 1 });
    const car = writeCar([cidForCbor(b)], [[cidForCbor(b), b]]);
    assert.equal(carBlocks(car).size, 1);
    assert.equal(carBlocks(car.subarray(0, car.length - 3)).size, 0, 'a truncated section is not taken');
    assert.equal(carBlocks(new Uint8Array([0xff, 0xff, 0xff])).size, 0);
  });
});

describe('Jetstream subscriber filter', () => {
  const msg = (
    kind: 'commit' | 'identity' | 'account',
    did: string,
    collection?: string,
    jsonBytes = 100,
  ) => ({
    kind,
    did,
    collection,
    jsonBytes,
  });

  it('selects by collection (NSID or prefix; commits only) and by DID (every kind)', () => {
    const q = parseSubscribeQuery(
      new URLSearchParams('wantedCollections=app.bsky.feed.post&wantedCollections=app.bsky.graph.*'),
    );
    const f = q.filter;
    assert.equal(f.selectsAll, false);
    assert.ok(f.wants(msg('commit', DID, 'app.bsky.feed.post')));
    assert.ok(f.wants(msg('commit', DID, 'app.bsky.graph.follow')));
    assert.ok(!f.wants(msg('commit', DID, 'app.bsky.feed.like')));
    assert.ok(!f.wants(msg('commit', DID, 'app.bsky.graphx.y')));
    assert.ok(f.wants(msg('identity', DID)), 'identity bypasses the collection filter');
    assert.ok(f.wants(msg('account', DID)));
    const byDid = parseSubscribeQuery(new URLSearchParams(`wantedDids=${DID}`)).filter;
    assert.ok(byDid.wants(msg('commit', DID, 'a.b.c')));
    assert.ok(!byDid.wants(msg('commit', OTHER, 'a.b.c')));
    assert.ok(!byDid.wants(msg('identity', OTHER)));
    const two = parseSubscribeQuery(
      new URLSearchParams(`app.bsky.*=1&wantedCollections=app.bsky.*&wantedDids=${DID}`),
    ).filter;
    assert.ok(two.wants(msg('commit', DID, 'app.bsky.feed.post')));
    assert.ok(!two.wants(msg('commit', DID, 'com.example.x')));
    assert.ok(!two.wants(msg('commit', OTHER, 'app.bsky.feed.post')));
    assert.ok(parseSubscribeQuery(new URLSearchParams('')).filter.selectsAll);
  });

  it('maxMessageSizeBytes: larger messages skipped; 0, negative or malformed mean no limit', () => {
    const f = parseSubscribeQuery(new URLSearchParams('maxMessageSizeBytes=150')).filter;
    assert.ok(f.wants(msg('commit', DID, 'a.b.c', 150)));
    assert.ok(!f.wants(msg('commit', DID, 'a.b.c', 151)));
    for (const v of ['0', '-5', 'abc', '99999999999999'])
      assert.ok(parseSubscribeQuery(new URLSearchParams(`maxMessageSizeBytes=${v}`)).filter.selectsAll, v);
  });

  it('cursor, requireHello and compress from the query', () => {
    assert.equal(
      parseSubscribeQuery(new URLSearchParams('cursor=1725911162329308')).cursor,
      1725911162329308,
    );
    assert.equal(parseSubscribeQuery(new URLSearchParams('cursor=-1')).cursor, undefined, 'negative: live');
    assert.throws(() => parseSubscribeQuery(new URLSearchParams('cursor=abc')), FilterError);
    assert.equal(parseSubscribeQuery(new URLSearchParams('requireHello=true')).requireHello, true);
    assert.equal(
      parseSubscribeQuery(new URLSearchParams('requireHello=1')).requireHello,
      false,
      'exactly "true"',
    );
    assert.equal(parseSubscribeQuery(new URLSearchParams('compress=true')).compressionAsked, true);
  });

  it('refuses bad or oversized lists', () => {
    assert.throws(() => parseSubscribeQuery(new URLSearchParams('wantedCollections=app..bsky')), FilterError);
    assert.throws(() => parseSubscribeQuery(new URLSearchParams('wantedDids=alice')), FilterError);
    const many = Array.from({ length: MAX_WANTED_COLLECTIONS + 1 }, (_, i) => `com.example.c${i}`);
    assert.throws(() => parseOptionsUpdate({ wantedCollections: many }), /too many wanted collections/);
    // duplicates count once (v1 parity)
    assert.ok(parseOptionsUpdate({ wantedCollections: [...many.slice(0, 5), ...many.slice(0, 5)] }));
    const dids = Array.from({ length: 10_001 }, (_, i) => `did:plc:${String(i).padStart(24, 'a')}`);
    assert.throws(() => parseOptionsUpdate({ wantedDids: dids }), /too many wanted DIDs/);
    assert.throws(() => parseOptionsUpdate({ wantedDids: 'x' }), FilterError);
    assert.throws(() => parseOptionsUpdate(42), FilterError);
    assert.ok(parseOptionsUpdate(null).selectsAll, 'no payload: no filter (as Jetstream)');
  });

  it('options_update replaces the whole filter (absent lists: no filter)', () => {
    const f = parseOptionsUpdate({ wantedDids: [DID], maxMessageSizeBytes: -3 });
    assert.ok(f instanceof SubscriberFilter);
    assert.equal(f.collections, null);
    assert.equal(f.maxMessageSizeBytes, 0);
    assert.ok(f.wants(msg('commit', DID, 'x.y.z')));
    assert.ok(!f.wants(msg('commit', OTHER, 'x.y.z')));
  });
});
