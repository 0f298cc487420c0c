import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { seededRandom } from '../../sim/prng.ts';
import { turn } from '../../test/support/wait.ts';
import { KnownPairsIndex } from './known-pairs.ts';
import { SqliteCollectionIndex } from './sqlite-index.ts';
import { CollectionIndexer } from './upkeep.ts';

describe('KnownPairsIndex', () => {
  it('writes only pairs it does not know, and forgets before anything that removes', async () => {
    const inner = new SqliteCollectionIndex({ path: ':memory:' });
    const ix = new KnownPairsIndex(inner);
    const p = (did: string, collection: string) => ({ did, collection });
    assert.equal(await ix.addPairs([p('did:plc:a', 'x.y.a'), p('did:plc:a', 'x.y.b')]), 2);
    assert.equal(await ix.addPairs([p('did:plc:a', 'x.y.a'), p('did:plc:a', 'x.y.c')]), 1);
    assert.equal(ix.skipped, 1);
    await ix.removePairs([p('did:plc:a', 'x.y.a')]);
    assert.equal(await ix.addPairs([p('did:plc:a', 'x.y.a')]), 1, 'written again after a removal');
    await ix.setCollections('did:plc:a', ['x.y.z']);
    assert.equal(await ix.addPairs([p('did:plc:a', 'x.y.b')]), 1, 'forgotten by setCollections');
    await ix.removeAccount('did:plc:a');
    assert.equal(await ix.addPairs([p('did:plc:a', 'x.y.b')]), 1, 'forgotten by removeAccount');
    assert.deepEqual(await inner.collectionsOf('did:plc:a'), ['x.y.b']);
    await ix.close();
  });

  it('leaves the index exactly as without it, over random writes', async () => {
    const plain = new SqliteCollectionIndex({ path: ':memory:' });
    const cached = new KnownPairsIndex(new SqliteCollectionIndex({ path: ':memory:' }), { maxAccounts: 3 });
    const rand = seededRandom(7);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
    const dids = ['did:plc:a', 'did:plc:b', 'did:plc:c', 'did:plc:d', 'did:plc:e'];
    const colls = ['a.b.c', 'a.b.d', 'x.y.z', 'q.r.s'];
    for (let i = 0; i < 2000; i++) {
      const r = rand();
      const did = pick(dids);
      const pairs = Array.from({ length: 1 + Math.floor(rand() * 3) }, () => ({
        did,
        collection: pick(colls),
      }));
      const only = pick(colls);
      for (const ix of [plain, cached]) {
        if (r < 0.6) await ix.addPairs(pairs);
        else if (r < 0.85) await ix.removePairs(pairs);
        else if (r < 0.95) await ix.setCollections(did, [only]);
        else await ix.removeAccount(did);
      }
    }
    for (const did of dids)
      assert.deepEqual(await cached.collectionsOf(did), await plain.collectionsOf(did), did);
    assert.equal(await cached.countPairs(), await plain.countPairs());
    assert.ok(cached.skipped > 0);
    await plain.close();
    await cached.close();
  });

  it('lets the indexer apply a commit that only creates in known collections at once, and nothing else', async () => {
    const ix = new KnownPairsIndex(new SqliteCollectionIndex({ path: ':memory:' }));
    const indexer = new CollectionIndexer(ix);
    const effect = (created: string[], gone: string[] = []) => ({
      created,
      gone,
      unknown: [],
      decided: gone.length,
    });
    assert.equal(indexer.applyKnownEffect('did:plc:a', effect(['a.b.c'])), false, 'not known yet');
    await indexer.applyEffect('did:plc:a', effect(['a.b.c']));
    await turn(); // the DID's chain is dropped a microtask after its last call settles
    assert.equal(indexer.applyKnownEffect('did:plc:a', effect(['a.b.c'])), true);
    assert.equal(indexer.applyKnownEffect('did:plc:a', effect([])), true, 'an update creates nothing');
    assert.equal(
      indexer.applyKnownEffect('did:plc:a', effect(['a.b.c'], ['x.y.z'])),
      false,
      'a delete goes through',
    );
    const queued = indexer.applyEffect('did:plc:a', effect([], ['a.b.c']));
    assert.equal(
      indexer.applyKnownEffect('did:plc:a', effect(['a.b.c'])),
      false,
      'behind queued work of the DID',
    );
    await queued;
    await turn();
    assert.equal(
      indexer.applyKnownEffect('did:plc:a', effect(['a.b.c'])),
      false,
      'the removal was forgotten',
    );
    assert.equal(indexer.stats.commits, 4);
    const plain = new CollectionIndexer(new SqliteCollectionIndex({ path: ':memory:' }));
    assert.equal(
      plain.applyKnownEffect('did:plc:a', effect(['a.b.c'])),
      false,
      'a plain store knows nothing',
    );
    await ix.close();
  });
});
