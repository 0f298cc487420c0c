import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { seededRandom as rng } from '../../sim/prng.ts';
import { readFixtureLines } from '../../test/support/interop-fixtures.ts';
import { InvalidSyntaxError } from './syntax.ts';
import {
  compareTid,
  MAX_TID_TIMESTAMP_US,
  parseTid,
  TidClock,
  tidFromTime,
  tidFromTimestampUs,
  tidTimestampMs,
} from './tid.ts';

const ALPHABET = '234567abcdefghijklmnopqrstuvwxyz';

/** Independent BigInt oracle: the 64-bit value of a TID. */
function tidValue(tid: string): bigint {
  let v = 0n;
  for (const c of tid) v = v * 32n + BigInt(ALPHABET.indexOf(c));
  return v;
}

describe('TID fixtures', () => {
  it('tid_syntax_valid.txt: parse, and encode back to the same string', () => {
    const lines = readFixtureLines('syntax/tid_syntax_valid.txt');
    assert.ok(lines.length >= 4);
    for (const tid of lines) {
      const { timestampUs, clockId } = parseTid(tid);
      const v = tidValue(tid);
      assert.equal(BigInt(timestampUs), v >> 10n, tid);
      assert.equal(BigInt(clockId), v & 1023n, tid);
      assert.equal(tidFromTimestampUs(timestampUs, clockId), tid);
    }
  });

  it('tid_syntax_invalid.txt: parseTid throws', () => {
    const lines = readFixtureLines('syntax/tid_syntax_invalid.txt');
    assert.ok(lines.length >= 8);
    for (const tid of lines) assert.throws(() => parseTid(tid), InvalidSyntaxError, tid);
  });
});

describe('TID encoding', () => {
  it('known value', () => {
    assert.deepEqual(parseTid('3jzfcijpj2z2a'), { timestampUs: 1688137381887007, clockId: 6 });
    assert.equal(tidTimestampMs('3jzfcijpj2z2a'), Date.parse('2023-06-30T15:03:01.887Z'));
    assert.equal(tidFromTimestampUs(0, 0), '2222222222222');
    assert.equal(tidFromTimestampUs(MAX_TID_TIMESTAMP_US, 1023), 'bzzzzzzzzzzzz');
  });

  it('round trips random values against a BigInt oracle', () => {
    const rand = rng(42);
    for (let i = 0; i < 2000; i++) {
      const ts = Math.floor(rand() * 2 ** 21) * 2 ** 32 + Math.floor(rand() * 2 ** 32);
      const clockId = Math.floor(rand() * 1024);
      const tid = tidFromTimestampUs(ts, clockId);
      assert.equal(tid.length, 13);
      assert.equal(tidValue(tid), (BigInt(ts) << 10n) | BigInt(clockId));
      assert.deepEqual(parseTid(tid), { timestampUs: ts, clockId });
    }
  });

  it('compareTid is string order, which equals numeric order', () => {
    const rand = rng(7);
    const tids = Array.from({ length: 500 }, () =>
      tidFromTimestampUs(Math.floor(rand() * MAX_TID_TIMESTAMP_US), Math.floor(rand() * 1024)),
    );
    for (let i = 1; i < tids.length; i++) {
      const [a, b] = [tids[i - 1], tids[i]];
      const numeric = tidValue(a) < tidValue(b) ? -1 : tidValue(a) > tidValue(b) ? 1 : 0;
      assert.equal(compareTid(a, b), numeric);
      assert.equal(compareTid(b, a), -numeric);
    }
    assert.equal(compareTid(tids[0], tids[0]), 0);
  });

  it('tidFromTime keeps ms and fractional µs', () => {
    const ms = Date.parse('2024-05-01T12:34:56.789Z');
    assert.equal(tidTimestampMs(tidFromTime(ms, 5)), ms);
    assert.equal(parseTid(tidFromTime(ms + 0.25, 5)).timestampUs, ms * 1000 + 250);
    assert.equal(parseTid(tidFromTime(ms, 5)).clockId, 5);
  });

  it('refuses out-of-range inputs', () => {
    assert.throws(() => tidFromTimestampUs(-1, 0), RangeError);
    assert.throws(() => tidFromTimestampUs(2 ** 53, 0), RangeError);
    assert.throws(() => tidFromTimestampUs(1.5, 0), RangeError);
    assert.throws(() => tidFromTimestampUs(0, 1024), RangeError);
    assert.throws(() => tidFromTimestampUs(0, -1), RangeError);
    assert.throws(() => new TidClock({ clockId: 2000 }), RangeError);
  });
});

describe('TidClock', () => {
  it('is strictly increasing when the wall clock stands still', () => {
    const clock = new TidClock({ clockId: 9, now: () => 1_700_000_000_000 });
    let prev = clock.next();
    assert.equal(parseTid(prev).timestampUs, 1_700_000_000_000_000);
    for (let i = 0; i < 5000; i++) {
      const tid = clock.next();
      assert.equal(compareTid(prev, tid), -1);
      assert.equal(parseTid(tid).clockId, 9);
      prev = tid;
    }
  });

  it('is strictly increasing when the wall clock goes backwards, and follows it forwards', () => {
    const times = [
      1_700_000_000_000, 1_600_000_000_000, 1_699_999_999_999, 1_700_000_000_000, 1_800_000_000_000,
    ];
    let i = 0;
    const clock = new TidClock({ clockId: 3, now: () => times[i++] });
    const tids = times.map(() => clock.next());
    for (let j = 1; j < tids.length; j++) assert.equal(compareTid(tids[j - 1], tids[j]), -1);
    assert.equal(parseTid(tids[1]).timestampUs, 1_700_000_000_000_001);
    assert.equal(tidTimestampMs(tids[4]), 1_800_000_000_000);
  });

  it('observe() moves the clock past an existing TID', () => {
    const clock = new TidClock({ clockId: 0, now: () => 1_000 });
    const later = tidFromTime(2_000_000, 1023);
    clock.observe(later);
    assert.equal(compareTid(later, clock.next()), -1);
  });

  it('real clock: random clock id in range, increasing over a burst', () => {
    const clock = new TidClock();
    assert.ok(clock.clockId >= 0 && clock.clockId <= 1023);
    let prev = clock.next();
    for (let i = 0; i < 2000; i++) {
      const tid = clock.next();
      assert.ok(prev < tid);
      prev = tid;
    }
    assert.ok(Math.abs(tidTimestampMs(prev) - Date.now()) < 5_000);
  });
});
