import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CursorTracker } from './cursor-tracker.ts';

describe('CursorTracker', () => {
  it('advances only to the highest seq below which everything is finished', () => {
    const t = new CursorTracker(4, 10);
    const a = t.submit(11);
    const b = t.submit(13);
    const c = t.submit(20);
    assert.equal(t.finish(b), undefined); // 11 still in flight
    assert.equal(t.committed, 10);
    assert.equal(t.finish(a), 13); // 11 and 13 done
    assert.equal(t.committed, 13);
    assert.equal(t.inFlight, 1);
    assert.equal(t.finish(c), 20);
    assert.equal(t.inFlight, 0);
  });

  it('is bounded and wraps around its ring', () => {
    const t = new CursorTracker(2, 0);
    let seq = 0;
    for (let round = 0; round < 5; round++) {
      const x = t.submit(++seq);
      const y = t.submit(++seq);
      assert.equal(t.full, true);
      assert.throws(() => t.submit(++seq));
      seq--;
      t.finish(y);
      assert.equal(t.finish(x), seq);
    }
    assert.equal(t.committed, 10);
  });

  it('a frame never finished (sink refused it) holds the cursor before it', () => {
    const t = new CursorTracker(8, 0);
    t.submit(1);
    const refused = t.submit(2);
    const later = t.submit(3);
    t.finish(0);
    t.finish(later);
    assert.equal(t.committed, 1);
    void refused;
    assert.equal(t.finish(99), undefined); // unknown ticket ignored
  });

  it('keeps a mark per frame: the lowest tracked one, and the finished frames stuck behind an unfinished one', () => {
    const t = new CursorTracker(4, 0);
    assert.equal(t.lowMark, undefined);
    const a = t.submit(1, 100);
    const b = t.submit(2, 105);
    const c = t.submit(5, 110);
    assert.equal(t.lowMark, 100);
    t.finish(b);
    t.finish(c);
    assert.deepEqual(t.finishedAhead(), [2, 5]);
    assert.equal(t.lowMark, 100, 'the unfinished front frame holds the mark');
    t.finish(a);
    assert.equal(t.lowMark, undefined);
    assert.deepEqual(t.finishedAhead(), []);
  });
});
