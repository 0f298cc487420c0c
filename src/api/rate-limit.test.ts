import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RateLimiter } from './rate-limit.ts';

describe('RateLimiter', () => {
  it('allows a burst, refuses with retry-after, refills over time', () => {
    let t = 0;
    const rl = new RateLimiter({ perMinute: 6, burst: 2, now: () => t });
    assert.deepEqual(rl.take('a'), { ok: true });
    assert.deepEqual(rl.take('a'), { ok: true });
    assert.deepEqual(rl.take('a'), { ok: false, retryAfterSeconds: 10 });
    assert.equal(rl.exhausted('a'), true);
    assert.deepEqual(rl.take('b'), { ok: true }, 'keys are independent');
    t = 10_000;
    assert.equal(rl.exhausted('a'), false);
    assert.deepEqual(rl.take('a'), { ok: true });
    assert.equal(rl.take('a').ok, false);
  });

  it('0 per minute means no limit', () => {
    const rl = new RateLimiter({ perMinute: 0 });
    for (let i = 0; i < 100; i++) assert.equal(rl.take('x').ok, true);
    assert.equal(rl.exhausted('x'), false);
    assert.equal(rl.size, 0);
  });

  it('stays bounded under many keys', () => {
    let t = 0;
    const rl = new RateLimiter({ perMinute: 1, maxKeys: 100, now: () => t });
    for (let i = 0; i < 1000; i++) {
      rl.take(`ip${i}`);
      t += 1;
    }
    assert.ok(rl.size <= 100);
    // The most recent key is still limited.
    assert.equal(rl.take('ip999').ok, false);
  });
});
