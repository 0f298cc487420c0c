import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RelayedSeqs } from './relayed-seqs.ts';

describe('RelayedSeqs', () => {
  it('keeps the seqs above the cursor, in any order given, and forgets those the cursor passes', () => {
    const r = new RelayedSeqs();
    r.add([9, 3, 7, 1, 5], 2);
    assert.equal(r.size, 4);
    assert.equal(r.has(1), false, 'at or below the cursor: not kept');
    assert.equal(r.has(3), true);
    r.delete(3); // received again and skipped
    assert.equal(r.has(3), false);
    r.dropThrough(6);
    assert.equal(r.size, 2);
    assert.equal(r.has(5), false);
    assert.equal(r.has(7), true);
    r.dropThrough(6); // nothing more to forget
    assert.equal(r.size, 2);
    r.add([8, 7, 12], 6); // a later connection's, merged
    assert.equal(r.size, 4);
    r.dropThrough(8);
    assert.deepEqual(
      [7, 8, 9, 12].map((s) => r.has(s)),
      [false, false, true, true],
    );
    r.dropThrough(100);
    assert.equal(r.size, 0);
    r.add([101], 100);
    assert.equal(r.has(101), true, 'usable again once empty');
  });

  it('a re-read that skips every seq in order leaves nothing behind', () => {
    const r = new RelayedSeqs();
    const n = 20_000;
    r.add(
      Array.from({ length: n }, (_, i) => n - i),
      0,
    );
    for (let seq = 1; seq <= n; seq++) {
      assert.equal(r.has(seq), true);
      r.delete(seq);
      r.dropThrough(seq);
    }
    assert.equal(r.size, 0);
  });
});
