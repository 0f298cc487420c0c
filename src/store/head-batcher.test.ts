import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HeadUpdateBatcher, type HeadWrite } from './head-batcher.ts';
import type { Account, RepoHead } from './metadata-store.ts';

const head = (rev: string): RepoHead => ({ rev, commitCid: `c${rev}`, dataCid: `d${rev}` });

/** An in-memory table applying the same rule as the SQL: write only if the rev is greater. */
function memorySink() {
  const revs = new Map<number, string>();
  const batches: HeadWrite[][] = [];
  let fail = false;
  const sink = async (writes: readonly HeadWrite[]): Promise<Account[]> => {
    await new Promise((r) => setTimeout(r, 1));
    if (fail) throw new Error('db down');
    batches.push([...writes]);
    const out: Account[] = [];
    for (const w of writes) {
      const cur = revs.get(w.uid);
      if (cur === undefined || cur < w.head.rev) {
        revs.set(w.uid, w.head.rev);
        out.push({
          uid: w.uid,
          did: `did:x:${w.uid}`,
          hostId: 1,
          status: 'active',
          upstreamStatus: 'active',
          head: w.head,
          createdAt: new Date(0),
        });
      }
    }
    return out;
  };
  return { sink, revs, batches, setFail: (f: boolean) => (fail = f) };
}

describe('HeadUpdateBatcher', () => {
  it('sends calls made while a batch is in flight together as the next batch', async () => {
    const m = memorySink();
    const b = new HeadUpdateBatcher(m.sink);
    const first = b.update(1, head('a'));
    await new Promise((r) => setImmediate(r)); // the first batch is now in flight
    const rest = Array.from({ length: 20 }, (_, i) => b.update(10 + i, head('a')));
    const results = await Promise.all([first, ...rest]);
    assert.ok(results.every((r) => r !== undefined));
    assert.deepEqual(
      m.batches.map((x) => x.length),
      [1, 20],
    );
    assert.equal(b.batches, 2);
  });

  it('never puts two writes for one uid in a batch, so they apply in call order', async () => {
    const m = memorySink();
    const b = new HeadUpdateBatcher(m.sink);
    const [x, y, z] = await Promise.all([
      b.update(1, head('b')),
      b.update(1, head('c')),
      b.update(1, head('a')),
    ]);
    assert.equal(x?.head?.rev, 'b');
    assert.equal(y?.head?.rev, 'c');
    assert.equal(z, undefined, 'older rev not applied');
    assert.ok(m.batches.every((batch) => new Set(batch.map((w) => w.uid)).size === batch.length));
    assert.equal(m.revs.get(1), 'c');
  });

  it('sends a list from updateAll as one batch, repeats of a uid in later batches', async () => {
    const m = memorySink();
    const b = new HeadUpdateBatcher(m.sink);
    const results = await b.updateAll([
      { uid: 1, head: head('b') },
      { uid: 2, head: head('a') },
      { uid: 3, head: head('a') },
      { uid: 1, head: head('a') },
      { uid: 1, head: head('c') },
    ]);
    assert.deepEqual(
      results.map((r) => r?.head?.rev),
      ['b', 'a', 'a', undefined, 'c'],
    );
    assert.deepEqual(
      m.batches.map((x) => x.length),
      [3, 1, 1],
    );
    assert.deepEqual(await b.updateAll([]), []);
  });

  it('caps the batch size and rejects every caller of a failed batch', async () => {
    const m = memorySink();
    const b = new HeadUpdateBatcher(m.sink, 3);
    await Promise.all(Array.from({ length: 7 }, (_, i) => b.update(i + 1, head('a'))));
    assert.deepEqual(
      m.batches.map((x) => x.length),
      [3, 3, 1],
    );
    m.setFail(true);
    const failed = await Promise.allSettled([b.update(1, head('z')), b.update(2, head('z'))]);
    assert.ok(failed.every((r) => r.status === 'rejected'));
    m.setFail(false);
    assert.equal((await b.update(1, head('z')))?.head?.rev, 'z');
  });
});
