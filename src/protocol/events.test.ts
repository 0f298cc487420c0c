import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeCbor } from './cbor.ts';
import { cidForCbor, cidForRaw } from './cid.ts';
import {
  EventShapeError,
  isKnownAccountStatus,
  MAX_COMMIT_OPS,
  MAX_SYNC_BLOCKS_BYTES,
  parseEventBody,
} from './events.ts';
import { decodeFrame, encodeFrame } from './frames.ts';

const c1 = cidForCbor(new Uint8Array([1]));
const c2 = cidForCbor(new Uint8Array([2]));
const did = 'did:plc:ewvi7nxzyoun6zhxrhs64oiz';
const time = '2024-11-05T12:00:00.000Z';

const commit = (): Record<string, unknown> => ({
  seq: 10,
  rebase: false,
  tooBig: false,
  repo: did,
  commit: c1,
  rev: '3l7abc',
  since: '3l6xyz',
  blocks: new Uint8Array(100),
  ops: [
    { action: 'create', path: 'app.bsky.feed.post/3l7a', cid: c2 },
    { action: 'update', path: 'app.bsky.actor.profile/self', cid: c2, prev: c1 },
    { action: 'delete', path: 'app.bsky.feed.like/3l7b', cid: null, prev: c1 },
  ],
  blobs: [cidForRaw(new Uint8Array([3]))],
  prevData: c1,
  time,
});

function shapeError(t: string, body: Record<string, unknown>): EventShapeError {
  try {
    parseEventBody(t, body);
  } catch (e) {
    assert.ok(e instanceof EventShapeError, `expected EventShapeError, got ${e}`);
    return e;
  }
  assert.fail('did not throw');
}

describe('parseEventBody #commit', () => {
  it('parses a full commit (through a frame round trip)', () => {
    const { header, body } = decodeFrame(encodeFrame('#commit', commit()));
    assert.equal(header.op, 1);
    const parsed = parseEventBody('#commit', body);
    assert.equal(parsed.kind, 'commit');
    if (parsed.kind !== 'commit') return;
    assert.equal(parsed.event.seq, 10);
    assert.equal(parsed.event.repo, did);
    assert.equal(parsed.event.commit.$link, c1.$link);
    assert.equal(parsed.event.ops.length, 3);
    assert.equal(parsed.event.ops[2].cid, null);
    assert.equal(parsed.event.ops[1].prev?.$link, c1.$link);
    assert.equal(parsed.event.prevData?.$link, c1.$link);
    assert.equal(parsed.event.blobs.length, 1);
  });

  it('accepts since: null, no prevData, no op prev, extra fields', () => {
    const b = commit();
    b.since = null;
    delete b.prevData;
    b.ops = [{ action: 'create', path: 'a/b', cid: c2 }];
    b.futureField = 'x';
    b.prev = null;
    const parsed = parseEventBody('#commit', b);
    assert.equal(parsed.kind, 'commit');
    if (parsed.kind === 'commit') {
      assert.equal(parsed.event.since, null);
      assert.equal(parsed.event.prevData, undefined);
      assert.ok(!('prev' in parsed.event.ops[0]));
    }
  });

  const bad: Array<[string, (b: Record<string, unknown>) => void, string, string]> = [
    ['missing seq', (b) => delete b.seq, 'missing-field', 'seq'],
    ['negative seq', (b) => (b.seq = -1), 'bad-field', 'seq'],
    ['string seq', (b) => (b.seq = '1'), 'bad-field', 'seq'],
    ['missing rebase', (b) => delete b.rebase, 'missing-field', 'rebase'],
    ['tooBig not bool', (b) => (b.tooBig = 0), 'bad-field', 'tooBig'],
    ['repo not a DID', (b) => (b.repo = 'alice.test'), 'bad-field', 'repo'],
    ['commit as string', (b) => (b.commit = c1.$link), 'bad-field', 'commit'],
    ['missing since', (b) => delete b.since, 'missing-field', 'since'],
    ['since number', (b) => (b.since = 5), 'bad-field', 'since'],
    ['blocks not bytes', (b) => (b.blocks = 'x'), 'bad-field', 'blocks'],
    ['blocks too large', (b) => (b.blocks = new Uint8Array(2_000_001)), 'too-large', 'blocks'],
    ['ops not array', (b) => (b.ops = {}), 'bad-field', 'ops'],
    [
      'too many ops',
      (b) => (b.ops = Array(MAX_COMMIT_OPS + 1).fill({ action: 'create', path: 'a/b', cid: c1 })),
      'too-large',
      'ops',
    ],
    [
      'bad action',
      (b) => (b.ops = [{ action: 'upsert', path: 'a/b', cid: c1 }]),
      'bad-field',
      'ops[0].action',
    ],
    [
      'create with null cid',
      (b) => (b.ops = [{ action: 'create', path: 'a/b', cid: null }]),
      'bad-field',
      'ops[0].cid',
    ],
    [
      'delete with cid',
      (b) => (b.ops = [{ action: 'delete', path: 'a/b', cid: c1 }]),
      'bad-field',
      'ops[0].cid',
    ],
    ['op missing cid', (b) => (b.ops = [{ action: 'delete', path: 'a/b' }]), 'missing-field', 'ops[0].cid'],
    [
      'op bad prev',
      (b) => (b.ops = [{ action: 'update', path: 'a/b', cid: c1, prev: 'x' }]),
      'bad-field',
      'ops[0].prev',
    ],
    ['op missing path', (b) => (b.ops = [{ action: 'create', cid: c1 }]), 'bad-field', 'ops[0].path'],
    ['op not object', (b) => (b.ops = [1]), 'bad-field', 'ops[0]'],
    ['blob not cid', (b) => (b.blobs = ['x']), 'bad-field', 'blobs[0]'],
    ['prevData not cid', (b) => (b.prevData = new Uint8Array(1)), 'bad-field', 'prevData'],
    ['missing time', (b) => delete b.time, 'missing-field', 'time'],
  ];
  for (const [name, mutate, reason, field] of bad) {
    it(`rejects ${name}`, () => {
      const b = commit();
      mutate(b);
      const e = shapeError('#commit', b);
      assert.equal(e.reason, reason);
      assert.equal(e.field, field);
      assert.equal(e.type, '#commit');
    });
  }
});

describe('parseEventBody other types', () => {
  it('#sync', () => {
    const body = { seq: 1, did, blocks: new Uint8Array(10), rev: '3l7', time };
    assert.deepEqual(parseEventBody('#sync', body), { kind: 'sync', event: body });
    assert.equal(shapeError('#sync', { ...body, rev: undefined }).field, 'rev');
    assert.equal(
      shapeError('#sync', { ...body, blocks: new Uint8Array(MAX_SYNC_BLOCKS_BYTES + 1) }).reason,
      'too-large',
    );
  });

  it('#identity', () => {
    assert.deepEqual(parseEventBody('#identity', { seq: 2, did, time }), {
      kind: 'identity',
      event: { seq: 2, did, time },
    });
    const withHandle = parseEventBody('#identity', { seq: 2, did, time, handle: 'alice.test' });
    assert.equal(withHandle.kind === 'identity' && withHandle.event.handle, 'alice.test');
    assert.equal(shapeError('#identity', { seq: 2, did, time, handle: 5 }).field, 'handle');
    assert.equal(shapeError('#identity', { seq: 2, time }).reason, 'missing-field');
  });

  it('#account', () => {
    const parsed = parseEventBody('#account', { seq: 3, did, time, active: false, status: 'desynchronized' });
    assert.deepEqual(parsed, {
      kind: 'account',
      event: { seq: 3, did, time, active: false, status: 'desynchronized' },
    });
    // Unknown status values pass (open set); callers can use isKnownAccountStatus.
    assert.equal(
      parseEventBody('#account', { seq: 3, did, time, active: false, status: 'new-thing' }).kind,
      'account',
    );
    assert.ok(isKnownAccountStatus('throttled'));
    assert.ok(!isKnownAccountStatus('new-thing'));
    assert.equal(shapeError('#account', { seq: 3, did, time }).field, 'active');
    assert.equal(shapeError('#account', { seq: 3, did, time, active: false, status: 1 }).field, 'status');
  });

  it('#info', () => {
    assert.deepEqual(parseEventBody('#info', { name: 'OutdatedCursor' }), {
      kind: 'info',
      event: { name: 'OutdatedCursor' },
    });
    assert.deepEqual(parseEventBody('#info', { name: 'X', message: 'm' }), {
      kind: 'info',
      event: { name: 'X', message: 'm' },
    });
    assert.equal(shapeError('#info', {}).field, 'name');
  });

  it('reports deprecated and unknown types without throwing', () => {
    for (const t of ['#handle', '#migrate', '#tombstone']) {
      assert.deepEqual(parseEventBody(t, { seq: 1 }), { kind: 'deprecated', type: t });
    }
    assert.deepEqual(parseEventBody('#labels', {}), { kind: 'unknown', type: '#labels' });
  });

  it('works on bodies decoded from CBOR bytes', () => {
    const { body } = decodeFrame(encodeFrame('#account', { seq: 3, did, time, active: true }));
    assert.equal(parseEventBody('#account', body).kind, 'account');
    assert.ok(encodeCbor(body).length > 0);
  });
});

// Issue 12: every string the relay copies into its own frames or logs is bounded and checked.
describe('parseEventBody bounds on relayed strings', () => {
  it('checks #identity and #account time as an atproto datetime of at most 64 chars', () => {
    for (const t of ['#identity', '#account'] as const) {
      const base = t === '#account' ? { seq: 3, did, active: true } : { seq: 2, did };
      for (const bad of ['x', '2024-11-05', `${time}${'0'.repeat(4096)}`, '2024-13-05T12:00:00.000Z']) {
        const e = shapeError(t, { ...base, time: bad });
        assert.equal(e.field, 'time', `${t} ${bad.slice(0, 30)}`);
        assert.ok(e.message.length < 300, 'the error does not quote the whole string');
      }
      assert.equal(parseEventBody(t, { ...base, time: '2024-11-05T12:00:00+02:00' }).kind, t.slice(1));
    }
  });

  it('caps the time of #commit and #sync at 64 chars', () => {
    assert.equal(shapeError('#commit', { ...commit(), time: 'x'.repeat(65) }).field, 'time');
    const sync = { seq: 1, did, blocks: new Uint8Array(10), rev: '3l7', time: 'x'.repeat(65) };
    assert.equal(shapeError('#sync', sync).field, 'time');
  });

  it('refuses DIDs that are too long or not DID syntax', () => {
    const long = `did:plc:${'a'.repeat(4 * 1024 * 1024)}`;
    for (const bad of [long, 'did:', 'did:PLC:abc', 'did:plc:abc%']) {
      assert.equal(shapeError('#identity', { seq: 2, did: bad, time }).field, 'did');
      assert.equal(shapeError('#commit', { ...commit(), repo: bad }).field, 'repo');
    }
    assert.ok(shapeError('#identity', { seq: 2, did: long, time }).message.length < 300);
  });

  it('caps handle and status lengths', () => {
    assert.equal(
      shapeError('#identity', { seq: 2, did, time, handle: `${'a'.repeat(254)}.test` }).field,
      'handle',
    );
    assert.equal(
      shapeError('#account', { seq: 3, did, time, active: false, status: 's'.repeat(65) }).field,
      'status',
    );
  });
});

describe('parseEventBody bounds on logged strings', () => {
  it('caps rev, since and op paths', () => {
    assert.equal(shapeError('#commit', { ...commit(), rev: 'r'.repeat(65) }).field, 'rev');
    assert.equal(shapeError('#commit', { ...commit(), since: 's'.repeat(65) }).field, 'since');
    const ops = [{ action: 'create', path: `a.b.c/${'k'.repeat(1100)}`, cid: c2 }];
    assert.equal(shapeError('#commit', { ...commit(), ops }).field, 'ops[0].path');
    const sync = { seq: 1, did, blocks: new Uint8Array(10), rev: 'r'.repeat(65), time };
    assert.equal(shapeError('#sync', sync).field, 'rev');
  });

  it('caps #info text', () => {
    assert.equal(shapeError('#info', { name: 'n'.repeat(129) }).field, 'name');
    assert.equal(shapeError('#info', { name: 'x', message: 'm'.repeat(1025) }).field, 'message');
  });
});
