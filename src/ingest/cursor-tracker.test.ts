import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CursorTracker } from './cursor-tracker.ts';

describe('CursorTracker', () => {
  it('advances only to the highest seq below which everything is finished', () => {
    const t = new CursorTracker(4, 4, 10);
    const a = t.submit(11);
    const b = t.submit(13);
    const c = t.submit(20);
    assert.equal(t.finish(b), undefined); // 11 still in flight
    assert.equal(t.committed, 10);
    assert.equal(t.finish(a), 13); // 11 and 13 done
    assert.equal(t.committed, 13);
    assert.equal(t.tracked, 1);
    assert.equal(t.finish(c), 20);
    assert.equal(t.tracked, 0);
    assert.equal(t.unfinished, 0);
  });

  it('is bounded and wraps around its ring', () => {
    const t = new CursorTracker(2, 2, 0);
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
    const t = new CursorTracker(8, 8, 0);
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
    const t = new CursorTracker(4, 4, 0);
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

  it('past a slow frame: finished frames do not count against the unfinished limit, only against the window', () => {
    const window = 300; // past the first ring size, so the ring grows (and unrolls) on the way
    const t = new CursorTracker(3, window, 0);
    const slow = t.submit(1, 1);
    let seq = 1;
    while (t.tracked < window) {
      assert.equal(t.full, false, `room at ${t.tracked} tracked`);
      const ticket = t.submit(++seq, seq);
      assert.equal(t.finish(ticket), undefined, 'the cursor waits for the slow frame');
    }
    assert.equal(t.unfinished, 1);
    assert.equal(t.full, true, 'the window is the bound now');
    assert.throws(() => t.submit(++seq));
    seq--;
    assert.deepEqual(
      t.finishedAhead(),
      Array.from({ length: window - 1 }, (_, i) => i + 2),
    );
    assert.equal(t.lowMark, 1);
    assert.equal(t.finish(slow), window, 'the slow frame finishing passes every frame behind it');
    assert.equal(t.tracked, 0);
    assert.equal(t.full, false);
  });

  it('grows its ring correctly when the front has wrapped', () => {
    const t = new CursorTracker(4, 1000, 0);
    // the ring starts at 64 slots: move its front to slot 40, then hold a
    // frame there and finish 159 more behind it (the ring grows twice, the
    // first time wrapped)
    for (let seq = 1; seq <= 40; seq++) t.finish(t.submit(seq, seq));
    const held = t.submit(41, 41);
    for (let seq = 42; seq <= 200; seq++) assert.equal(t.finish(t.submit(seq, seq)), undefined);
    assert.deepEqual(
      t.finishedAhead(),
      Array.from({ length: 159 }, (_, i) => i + 42),
    );
    assert.equal(t.lowMark, 41);
    assert.equal(t.finish(held), 200);
    assert.equal(t.tracked, 0);
    for (let seq = 201; seq <= 400; seq++)
      assert.equal(t.finish(t.submit(seq, seq)), seq, 'and goes on in the grown ring');
  });

  it('counts each frame finished once, however often it is reported', () => {
    const t = new CursorTracker(2, 8, 0);
    const a = t.submit(1);
    const b = t.submit(2);
    t.finish(b);
    t.finish(b);
    assert.equal(t.unfinished, 1);
    assert.equal(t.full, false);
    assert.equal(t.finish(a), 2);
  });
});
