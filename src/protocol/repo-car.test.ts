// digestRepoCar against real (simulated) repos: the collections it finds by
// seeking must be exactly the MST's, for names that sort on both sides of
// 'c/'; every limit and every defect of a hostile CAR has its own reason.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { malformRepoCar, padRepoCar } from '../../sim/hostile-repo.ts';
import { Prng } from '../../sim/prng.ts';
import { SimRepo } from '../../sim/repo.ts';
import { readCar, writeCar } from './car.ts';
import { Keypair } from './keys.ts';
import { digestRepoCar, RepoCarError, type RepoDigestOptions } from './repo-car.ts';
import { TidClock } from './tid.ts';

const KEY = Keypair.fromPrivateKey('k256', new Uint8Array(32).fill(9));
const DID = 'did:plc:digest';
// collection names on both sides of 'a.b.c/' in key order
const TRICKY = ['a.b.c', 'a.b.c-x', 'a.b.c.d', 'a.b.c2', 'a.b.cc', 'app.bsky.feed.post'];

function repoWith(records: [collection: string, rkey: string][]): SimRepo {
  const repo = new SimRepo(DID, KEY, new TidClock({ clockId: 1, now: () => 1_700_000_000_000 }));
  repo.applyWrites(records.map(([collection, rkey]) => ({ action: 'create' as const, collection, rkey })));
  return repo;
}

const limits = (extra: Partial<RepoDigestOptions> = {}): RepoDigestOptions => ({
  maxBytes: 64 * 1024 * 1024,
  maxBlocks: 1_000_000,
  did: DID,
  ...extra,
});

function reasonOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof RepoCarError, `expected RepoCarError, got ${e}`);
    return e.reason;
  }
  assert.fail('did not throw');
}

describe('digestRepoCar', () => {
  it('reads the head commit and exactly the collections of the MST (random repos)', () => {
    const prng = new Prng('digest');
    for (let round = 0; round < 30; round++) {
      const n = prng.int(400);
      const records: [string, string][] = [];
      const used = new Set<string>();
      for (let i = 0; i < n; i++) {
        const c = TRICKY[prng.int(round % 2 === 0 ? TRICKY.length : 2)];
        const rkey = `r${prng.int(1_000_000)}`;
        if (used.has(`${c}/${rkey}`)) continue;
        used.add(`${c}/${rkey}`);
        records.push([c, rkey]);
      }
      const repo = repoWith(records);
      const head = repo.head();
      const car = repo.exportCar();
      const d = digestRepoCar(car, limits({ key: KEY.publicKey }));
      assert.deepEqual(d.collections, repo.collections(), `round ${round}`);
      assert.equal(d.did, DID);
      assert.equal(d.rev, head?.rev);
      assert.deepEqual(d.commitCid, head?.commitCid.bytes);
      assert.deepEqual(d.dataCid, head?.dataCid.bytes);
      assert.deepEqual(d.commitBlock, readCar(car, { maxBytes: car.length }).blocks.get(head!.commitCid));
      assert.equal(d.signature, 'ok');
      assert.equal(d.bytes, car.length);
    }
  });

  it('handles an empty repo, checks the signature only with a key', () => {
    const repo = repoWith([
      ['abc', 'x'],
      ['app.bsky.feed.like', 'y'],
    ]);
    const d = digestRepoCar(repo.exportCar(), limits());
    assert.deepEqual(d.collections, ['abc', 'app.bsky.feed.like'], 'names as the keys have them');
    assert.equal(d.signature, 'unchecked');
    assert.deepEqual(digestRepoCar(repoWith([]).exportCar(), limits()).collections, []);
    assert.deepEqual(digestRepoCar(repo.exportCar(), limits({ collections: false })).collections, []);
  });

  it('ignores junk blocks within the limits and refuses more blocks or bytes than allowed', () => {
    const car = padRepoCar(repoWith([['a.b.c', 'x']]).exportCar(), 20_000);
    assert.deepEqual(digestRepoCar(car, limits()).collections, ['a.b.c']);
    assert.equal(
      reasonOf(() => digestRepoCar(car, limits({ maxBlocks: 20_000 }))),
      'too-many-blocks',
    );
    assert.equal(
      reasonOf(() => digestRepoCar(car, limits({ maxBytes: car.length - 1 }))),
      'too-large',
    );
  });

  it('names what is wrong with a bad repo', () => {
    const repo = repoWith([
      ['a.b.c', 'x'],
      ['a.b.d', 'y'],
    ]);
    const car = repo.exportCar();
    assert.equal(
      reasonOf(() => digestRepoCar(malformRepoCar(car, 'truncated'), limits())),
      'bad-car',
    );
    assert.equal(
      reasonOf(() => digestRepoCar(malformRepoCar(car, 'hash-mismatch'), limits())),
      'bad-car',
    );
    assert.equal(
      reasonOf(() => digestRepoCar(malformRepoCar(car, 'no-root'), limits())),
      'missing-commit',
    );
    assert.equal(
      reasonOf(() => digestRepoCar(car, limits({ did: 'did:plc:other' }))),
      'wrong-did',
    );
    assert.equal(
      reasonOf(() => digestRepoCar(car, limits({ key: Keypair.generate('k256').publicKey }))),
      'bad-signature',
    );
    const highS = new SimRepo(DID, KEY, new TidClock({ clockId: 2 }));
    highS.applyWrites([{ action: 'create', collection: 'a.b.c', rkey: 'x' }], { highS: true });
    assert.equal(
      reasonOf(() => digestRepoCar(highS.exportCar(), limits({ key: KEY.publicKey }))),
      'high-s-signature',
    );
    // the commit block is there but the MST root is not
    const parsed = readCar(car, { maxBytes: car.length });
    const head = repo.head()!;
    const onlyCommit = writeCar([head.commitCid], [[head.commitCid, parsed.blocks.get(head.commitCid)!]]);
    assert.equal(
      reasonOf(() => digestRepoCar(onlyCommit, limits())),
      'missing-mst-block',
    );
    const notACommit = writeCar(
      [head.dataCid],
      [...parsed.blocks].filter(([c]) => c.$link !== head.commitCid.$link),
    );
    assert.equal(
      reasonOf(() => digestRepoCar(notACommit, limits())),
      'bad-commit',
    );
  });

  it('refuses a repo with more distinct collections than allowed', () => {
    const car = repoWith(
      Array.from({ length: 5 }, (_, i) => [`a.b.c${i}`, 'x'] as [string, string]),
    ).exportCar();
    assert.equal(digestRepoCar(car, limits({ maxCollections: 5 })).collections.length, 5);
    assert.equal(
      reasonOf(() => digestRepoCar(car, limits({ maxCollections: 4 }))),
      'too-many-collections',
    );
  });
});
