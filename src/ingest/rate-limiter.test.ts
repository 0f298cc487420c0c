import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  applyRateOverride,
  computeHostLimits,
  HostRateLimiter,
  mergeRateOverride,
  TRUSTED_RATE_FACTOR,
} from './rate-limiter.ts';

describe('computeHostLimits', () => {
  it('scales with accounts like indigo and multiplies for trusted hosts', () => {
    assert.deepEqual(computeHostLimits(0, false), { perSecond: 50, perHour: 2500, perDay: 20_000 });
    assert.deepEqual(computeHostLimits(5000, false), { perSecond: 55, perHour: 7500, perDay: 70_000 });
    assert.equal(computeHostLimits(0, true).perSecond, 50 * TRUSTED_RATE_FACTOR);
  });
});

describe('HostRateLimiter', () => {
  it('allows a burst up to the per-second limit, then asks to wait for refill', () => {
    const l = new HostRateLimiter({ perSecond: 10, perHour: 1000, perDay: 10_000 }, 0);
    for (let i = 0; i < 10; i++) assert.equal(l.take(0), 0);
    const wait = l.take(0);
    assert.ok(wait >= 90 && wait <= 101, `wait ${wait}`);
    assert.equal(l.take(100), 0); // one token back after 100 ms
    assert.equal(l.throttled, 1);
  });

  it('the hour bucket caps a long flood', () => {
    const l = new HostRateLimiter({ perSecond: 1000, perHour: 5, perDay: 10_000 }, 0);
    for (let i = 0; i < 5; i++) assert.equal(l.take(i * 1000), 0);
    const wait = l.take(5000);
    assert.ok(wait > 600_000, `hour bucket wait ${wait}`);
  });

  it('new limits clamp the tokens', () => {
    const l = new HostRateLimiter({ perSecond: 100, perHour: 1000, perDay: 10_000 }, 0);
    l.setLimits({ perSecond: 2, perHour: 1000, perDay: 10_000 }, 0);
    assert.equal(l.take(0), 0);
    assert.equal(l.take(0), 0);
    assert.ok(l.take(0) > 0);
    assert.equal(l.current.perSecond, 2);
  });
});

describe('rate-limit overrides', () => {
  const defaults = { perSecond: 50, perHour: 2500, perDay: 20_000 };

  it('replace only the fields given', () => {
    assert.deepEqual(applyRateOverride(defaults, { perSecond: 7 }), { ...defaults, perSecond: 7 });
    assert.deepEqual(applyRateOverride(defaults, undefined), defaults);
  });

  it('merge into the existing override; a field set back to the default is cleared', () => {
    const a = mergeRateOverride(defaults, undefined, { perSecond: 200, perHour: 9000 });
    assert.deepEqual(a, { perSecond: 200, perHour: 9000 });
    const b = mergeRateOverride(defaults, a, { perDay: 1 });
    assert.deepEqual(b, { perSecond: 200, perHour: 9000, perDay: 1 });
    const c = mergeRateOverride(defaults, b, { perSecond: 50, perHour: 2500 });
    assert.deepEqual(c, { perDay: 1 });
    assert.equal(mergeRateOverride(defaults, c, { perDay: 20_000 }), undefined);
    assert.equal(mergeRateOverride(defaults, c, { perDay: 0 }), undefined);
  });
});
