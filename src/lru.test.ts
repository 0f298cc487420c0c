import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { seededRandom } from '../sim/prng.ts';
import { Lru } from './lru.ts';

describe('Lru', () => {
  it('evicts the least recently used entry, a get or set counting as a use', () => {
    const lru = new Lru<string, number>(3);
    const keys = () => [...lru.entries()].map(([k]) => k);
    lru.set('a', 1);
    lru.set('b', 2);
    lru.set('c', 3);
    assert.equal(lru.get('a'), 1); // a is now the most recent
    lru.set('d', 4); // evicts b
    assert.deepEqual(keys(), ['c', 'a', 'd']);
    lru.set('c', 30); // a replace is a use too
    lru.set('e', 5); // evicts a
    assert.equal(lru.peek('a'), undefined);
    assert.deepEqual(
      [...lru.entries()],
      [
        ['d', 4],
        ['c', 30],
        ['e', 5],
      ],
    );
    // peek and replace leave the order alone
    assert.equal(lru.peek('d'), 4);
    assert.equal(lru.replace('d', 40), true);
    assert.equal(lru.replace('zz', 1), false);
    lru.set('f', 6); // evicts d, still the oldest
    assert.deepEqual(keys(), ['c', 'e', 'f']);
    assert.deepEqual(lru.evictOldest(), ['c', 30]);
    assert.equal(lru.delete('e'), true);
    assert.equal(lru.delete('e'), false);
    assert.deepEqual([...lru.entries()], [['f', 6]]);
    lru.clear();
    assert.equal(lru.size, 0);
    assert.equal(lru.evictOldest(), undefined);
    assert.equal(new Lru<string, number>(0).size, 0);
    const none = new Lru<string, number>(0);
    none.set('a', 1);
    assert.equal(none.size, 0);
    assert.throws(() => new Lru(-1));
  });

  it('matches a plain array model over random operations', () => {
    const random = seededRandom('lru-model');
    for (const capacity of [1, 2, 5, 17]) {
      const lru = new Lru<number, number>(capacity);
      let model: Array<[number, number]> = []; // oldest first
      for (let step = 0; step < 5_000; step++) {
        const key = Math.floor(random() * capacity * 2);
        const op = random();
        const at = model.findIndex(([k]) => k === key);
        if (op < 0.4) {
          const got = lru.get(key);
          assert.equal(got, at >= 0 ? model[at][1] : undefined);
          if (at >= 0) model.push(...model.splice(at, 1));
        } else if (op < 0.8) {
          lru.set(key, step);
          if (at >= 0) model.splice(at, 1);
          model.push([key, step]);
          if (model.length > capacity) model = model.slice(model.length - capacity);
        } else if (op < 0.9) {
          assert.equal(lru.delete(key), at >= 0);
          if (at >= 0) model.splice(at, 1);
        } else {
          assert.equal(lru.peek(key), at >= 0 ? model[at][1] : undefined);
        }
        assert.equal(lru.size, model.length);
      }
      assert.deepEqual([...lru.entries()], model);
    }
  });

  it('keeps exactly the newest entries through many evictions', () => {
    // (what each eviction costs is measured by src/lru.bench.ts)
    const lru = new Lru<number, number>(50_000);
    for (let i = 0; i < 200_000; i++) lru.set(i, i);
    assert.equal(lru.size, 50_000);
    assert.deepEqual(lru.evictOldest(), [150_000, 150_000]);
  });
});
