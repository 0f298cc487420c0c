import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AccountCache } from './account-cache.ts';
import type { Account } from './metadata-store.ts';

const account = (did: string, status: Account['status'] = 'active'): Account => ({
  uid: Number(did.replace(/\D/g, '')) || 1,
  did,
  hostId: 1,
  status,
  upstreamStatus: 'active',
  head: null,
  createdAt: new Date(0),
});

function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe('AccountCache', () => {
  it('evicts the least recently used entry at capacity', async () => {
    const cache = new AccountCache(2);
    cache.put(account('did:x:1'));
    cache.put(account('did:x:2'));
    await cache.get('did:x:1', async () => assert.fail('should hit'));
    cache.put(account('did:x:3')); // evicts 2, the least recently used
    assert.equal(cache.size, 2);
    let loads = 0;
    const load = async (did: string) => {
      loads++;
      return account(did);
    };
    await cache.get('did:x:1', load);
    await cache.get('did:x:3', load);
    assert.equal(loads, 0);
    await cache.get('did:x:2', load);
    assert.equal(loads, 1);
    assert.equal(cache.hits, 3);
    assert.equal(cache.misses, 1);
  });

  it('shares one load between concurrent misses and does not cache absent accounts', async () => {
    const cache = new AccountCache(10);
    const d = deferred<Account | undefined>();
    let loads = 0;
    const load = () => {
      loads++;
      return d.promise;
    };
    const a = cache.get('did:x:1', load);
    const b = cache.get('did:x:1', load);
    d.resolve(undefined);
    assert.equal(await a, undefined);
    assert.equal(await b, undefined);
    assert.equal(loads, 1);
    assert.equal(cache.size, 0);
  });

  it('does not cache a load that a write overtook', async () => {
    const cache = new AccountCache(10);
    const d = deferred<Account | undefined>();
    const pending = cache.get('did:x:1', () => d.promise);
    cache.refresh(account('did:x:1', 'suspended')); // the write lands while the read is in flight
    d.resolve(account('did:x:1', 'active')); // the read returns the older row
    assert.equal((await pending)?.status, 'active');
    assert.equal(cache.size, 0, 'the stale row was not cached');
    const next = await cache.get('did:x:1', async () => account('did:x:1', 'suspended'));
    assert.equal(next?.status, 'suspended');
  });

  it('refresh replaces cached entries only; invalidate drops them; load errors propagate', async () => {
    const cache = new AccountCache(10);
    cache.refresh(account('did:x:1'));
    assert.equal(cache.size, 0);
    cache.put(account('did:x:1'));
    cache.refresh(account('did:x:1', 'throttled'));
    assert.equal((await cache.get('did:x:1', async () => undefined))?.status, 'throttled');
    cache.invalidate('did:x:1');
    assert.equal(cache.size, 0);
    await assert.rejects(
      cache.get('did:x:2', async () => {
        throw new Error('db down');
      }),
      /db down/,
    );
    assert.equal((await cache.get('did:x:2', async () => account('did:x:2')))?.did, 'did:x:2');
  });

  it('capacity 0 disables caching', async () => {
    const cache = new AccountCache(0);
    cache.put(account('did:x:1'));
    assert.equal(cache.size, 0);
    assert.throws(() => new AccountCache(-1), /capacity/);
  });
});
