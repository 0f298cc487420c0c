// FrameBudget: the global byte budget for frames held by all subscribers.
// It fills at the limit (every client told once), reopens at three quarters
// (told once more), gives each holder at most half or an equal share, and
// keeps its books straight when frames are given back after a client left.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FrameBudget } from './frame-budget.ts';

class Client {
  told = 0;
  budgetChanged(): void {
    this.told++;
  }
}

describe('FrameBudget', () => {
  it('fills at the limit, reopens at three quarters, telling every client once each time', () => {
    const b = new FrameBudget(1000);
    const clients = [new Client(), new Client(), new Client()];
    const [a1, a2] = clients.map((c) => b.open(c));
    a1.take(400);
    a2.take(400);
    assert.ok(!b.isFull && a1.mayRead());
    a2.take(200);
    assert.ok(b.isFull);
    assert.equal(b.fills, 1);
    assert.deepEqual(
      clients.map((c) => c.told),
      [1, 1, 1],
    );
    assert.ok(!a1.mayRead() && !a2.mayRead());
    a2.give(200);
    assert.ok(b.isFull, 'still above three quarters');
    a2.give(50);
    assert.ok(!b.isFull);
    assert.equal(b.usedBytes, 750);
    assert.deepEqual(
      clients.map((c) => c.told),
      [2, 2, 2],
    );
    assert.equal(b.peakBytes, 1000);
  });

  it('gives one holder at most half, and an equal share under contention', () => {
    const b = new FrameBudget(1200);
    const a = b.open(new Client());
    a.take(599);
    assert.ok(a.mayRead());
    a.take(1);
    assert.ok(!a.mayRead(), 'half the budget');
    const others = [b.open(new Client()), b.open(new Client())];
    for (const o of others) o.take(1);
    assert.equal(b.shareBytes, 400);
    assert.ok(!a.mayRead());
    a.give(300);
    assert.ok(a.mayRead());
    assert.ok(others[0].mayRead());
  });

  it('counts frames given back after the client closed, and never goes negative', () => {
    const b = new FrameBudget(100);
    const c = new Client();
    const a = b.open(c);
    a.take(80);
    a.close();
    a.take(30); // a frame still arriving on the closing socket
    assert.ok(b.isFull);
    assert.equal(c.told, 0, 'a closed account is not told');
    a.give(80);
    a.give(30);
    a.give(10);
    assert.equal(b.usedBytes, 0);
    assert.equal(a.heldBytes, 0);
    assert.equal(b.shareBytes, 50);
    assert.ok(!b.isFull);
  });
});
