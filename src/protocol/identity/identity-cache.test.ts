import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { makeDidDocument, startTestPlc } from '../../../test/support/identity-servers.ts';
import { ConcurrencyLimiter, QueueFullError } from './concurrency-limiter.ts';
import type { AtprotoIdentity } from './did-document.ts';
import { DidNotFoundError, DidResolutionError, DidResolver, type IdentityResolver } from './did-resolver.ts';
import { IdentityCache } from './identity-cache.ts';
import { createSafeFetcher } from './safe-fetch.ts';

/** A resolver whose answers the test releases by hand. */
class ManualResolver implements IdentityResolver {
  calls: string[] = [];
  pending: Array<{ did: string; resolve: (v: AtprotoIdentity) => void; reject: (e: Error) => void }> = [];
  resolve(did: string): Promise<AtprotoIdentity> {
    this.calls.push(did);
    return new Promise((resolve, reject) => this.pending.push({ did, resolve, reject }));
  }
  answer(did: string, value: AtprotoIdentity | Error): void {
    const i = this.pending.findIndex((p) => p.did === did);
    assert.ok(i >= 0, `no pending call for ${did}`);
    const [p] = this.pending.splice(i, 1);
    if (value instanceof Error) p.reject(value);
    else p.resolve(value);
  }
}

const tick = () => new Promise<void>((r) => setImmediate(r));
const ident = (did: string, handle = 'h.test'): AtprotoIdentity => ({ did, handle });

function setup(opts: Partial<ConstructorParameters<typeof IdentityCache>[0]> = {}) {
  const resolver = new ManualResolver();
  const clock = { t: 1_000_000 };
  const cache = new IdentityCache({ resolver, now: () => clock.t, ttlMs: 1000, negativeTtlMs: 100, ...opts });
  return { resolver, clock, cache };
}

describe('IdentityCache', () => {
  it('caches for ttl, then refetches', async () => {
    const { resolver, clock, cache } = setup();
    const p = cache.resolve('did:a');
    await tick();
    resolver.answer('did:a', ident('did:a'));
    assert.deepEqual(await p, ident('did:a'));
    assert.deepEqual(await cache.resolve('did:a'), ident('did:a'));
    assert.deepEqual(cache.get('did:a'), ident('did:a'));
    assert.equal(resolver.calls.length, 1);
    clock.t += 1000;
    assert.equal(cache.get('did:a'), undefined);
    const again = cache.resolve('did:a');
    await tick();
    resolver.answer('did:a', ident('did:a', 'new.test'));
    assert.equal((await again).handle, 'new.test');
    assert.equal(resolver.calls.length, 2);
    const s = cache.stats();
    assert.equal(s.hits, 2, 'one through resolve(), one through get()');
    assert.equal(s.misses, 2);
  });

  it('coalesces concurrent lookups of one DID', async () => {
    const { resolver, cache } = setup();
    const ps = Array.from({ length: 50 }, () => cache.resolve('did:a'));
    await tick();
    assert.equal(resolver.calls.length, 1);
    assert.equal(cache.stats().inflight, 1);
    resolver.answer('did:a', ident('did:a'));
    for (const v of await Promise.all(ps)) assert.equal(v.did, 'did:a');
    assert.equal(cache.stats().coalesced, 49);
    assert.equal(cache.stats().inflight, 0);
  });

  it('caches definitive failures for the negative ttl and transient ones for the error ttl', async () => {
    const { resolver, clock, cache } = setup({ errorTtlMs: 10 });
    const p = cache.resolve('did:gone');
    await tick();
    resolver.answer('did:gone', new DidNotFoundError('did:gone', true));
    await assert.rejects(p, DidNotFoundError);
    await assert.rejects(cache.resolve('did:gone'), DidNotFoundError);
    assert.equal(resolver.calls.length, 1);
    assert.equal(cache.stats().negativeHits, 1);
    assert.equal(cache.get('did:gone'), undefined);
    clock.t += 100;
    cache.resolve('did:gone').catch(() => {});
    await tick();
    assert.equal(resolver.calls.length, 2);

    const q = cache.resolve('did:flaky');
    await tick();
    resolver.answer('did:flaky', new DidResolutionError('did:flaky', 'timeout', true));
    await assert.rejects(q, DidResolutionError);
    await assert.rejects(cache.resolve('did:flaky'), DidResolutionError);
    clock.t += 10;
    cache.resolve('did:flaky').catch(() => {});
    await tick();
    assert.equal(resolver.calls.filter((d) => d === 'did:flaky').length, 2);
  });

  it('forceRefresh bypasses a fresh entry', async () => {
    const { resolver, cache } = setup();
    const p = cache.resolve('did:a');
    await tick();
    resolver.answer('did:a', ident('did:a', 'old.test'));
    await p;
    const q = cache.resolve('did:a', { forceRefresh: true });
    await tick();
    resolver.answer('did:a', ident('did:a', 'new.test'));
    assert.equal((await q).handle, 'new.test');
    assert.equal(cache.get('did:a')?.handle, 'new.test');
  });

  it('purge drops the entry and discards an in-flight answer', async () => {
    const { resolver, cache } = setup();
    const p = cache.resolve('did:a');
    await tick();
    resolver.answer('did:a', ident('did:a', 'old.test'));
    await p;
    cache.purge('did:a');
    assert.equal(cache.get('did:a'), undefined);

    const slow = cache.resolve('did:a');
    await tick();
    cache.purge('did:a'); // an #identity event arrives while the old fetch is running
    const fresh = cache.resolve('did:a');
    await tick();
    assert.equal(resolver.calls.length, 3);
    resolver.answer('did:a', ident('did:a', 'stale.test'));
    assert.equal((await slow).handle, 'stale.test');
    assert.equal(cache.get('did:a'), undefined, 'answer from before the purge is not stored');
    resolver.answer('did:a', ident('did:a', 'fresh.test'));
    assert.equal((await fresh).handle, 'fresh.test');
    assert.equal(cache.get('did:a')?.handle, 'fresh.test');
  });

  it('evicts the least recently used entry past maxEntries', async () => {
    const { resolver, cache } = setup({ maxEntries: 2 });
    for (const did of ['did:a', 'did:b']) {
      const p = cache.resolve(did);
      await tick();
      resolver.answer(did, ident(did));
      await p;
    }
    await cache.resolve('did:a'); // a is now more recent than b
    const p = cache.resolve('did:c');
    await tick();
    resolver.answer('did:c', ident('did:c'));
    await p;
    assert.ok(cache.get('did:a'));
    assert.equal(cache.get('did:b'), undefined);
    assert.ok(cache.get('did:c'));
    assert.equal(cache.stats().size, 2);
    assert.equal(cache.stats().evictions, 1);
  });

  it('counts get() hits and keeps entries read through get() young in the LRU', async () => {
    const { resolver, cache } = setup({ maxEntries: 2 });
    for (const did of ['did:a', 'did:b']) {
      const p = cache.resolve(did);
      await tick();
      resolver.answer(did, ident(did));
      await p;
    }
    const hitsBefore = cache.stats().hits;
    assert.ok(cache.get('did:a')); // the relay's hot path: a is now more recent than b
    assert.equal(cache.stats().hits, hitsBefore + 1);
    const p = cache.resolve('did:c');
    await tick();
    resolver.answer('did:c', ident('did:c'));
    await p;
    assert.ok(cache.get('did:a'), 'a survived: it was used');
    assert.equal(cache.get('did:b'), undefined, 'b was the least recently used');
  });

  it('serves stale while revalidating, and keeps stale on a transient failure', async () => {
    const { resolver, clock, cache } = setup({ staleTtlMs: 5000, errorTtlMs: 50 });
    const p = cache.resolve('did:a');
    await tick();
    resolver.answer('did:a', ident('did:a', 'v1.test'));
    await p;
    clock.t += 1500; // expired, inside the stale window
    assert.equal((await cache.resolve('did:a')).handle, 'v1.test');
    assert.equal(cache.stats().staleHits, 1);
    await tick();
    assert.equal(resolver.calls.length, 2, 'background refresh started');
    resolver.answer('did:a', new DidResolutionError('did:a', 'HTTP 503', true));
    await tick();
    assert.equal((await cache.resolve('did:a')).handle, 'v1.test', 'stale kept after transient failure');
    await tick();
    assert.equal(resolver.calls.length, 2, 'no retry before errorTtlMs');
    clock.t += 50;
    assert.equal((await cache.resolve('did:a')).handle, 'v1.test');
    await tick();
    assert.equal(resolver.calls.length, 3);
    resolver.answer('did:a', ident('did:a', 'v2.test'));
    await tick();
    assert.equal((await cache.resolve('did:a')).handle, 'v2.test');
    clock.t += 10_000; // past the stale window: a plain miss
    const q = cache.resolve('did:a');
    await tick();
    resolver.answer('did:a', new DidNotFoundError('did:a', true));
    await assert.rejects(q, DidNotFoundError);
  });

  it('limits concurrent resolutions and queues the rest in order', async () => {
    const { resolver, cache } = setup({ maxConcurrent: 3 });
    const dids = Array.from({ length: 10 }, (_, i) => `did:${i}`);
    const ps = dids.map((d) => cache.resolve(d));
    await tick();
    assert.deepEqual(resolver.calls, dids.slice(0, 3));
    assert.equal(cache.stats().running, 3);
    assert.equal(cache.stats().queued, 7);
    resolver.answer('did:1', ident('did:1'));
    await tick();
    await tick();
    assert.deepEqual(resolver.calls, dids.slice(0, 4));
    for (const d of dids) {
      if (d === 'did:1') continue;
      while (!resolver.pending.some((p) => p.did === d)) await tick();
      resolver.answer(d, ident(d));
    }
    assert.equal((await Promise.all(ps)).length, 10);
    assert.equal(cache.stats().running, 0);
  });
});

describe('ConcurrencyLimiter', () => {
  it('refuses work past the queue limit', async () => {
    const limiter = new ConcurrencyLimiter(1, 1);
    let release = () => {};
    const first = limiter.run(() => new Promise<void>((r) => (release = r)));
    const second = limiter.run(async () => 'second');
    await assert.rejects(
      limiter.run(async () => 'third'),
      QueueFullError,
    );
    release();
    await first;
    assert.equal(await second, 'second');
  });

  it('keeps running after a task throws', async () => {
    const limiter = new ConcurrencyLimiter(1);
    await assert.rejects(
      limiter.run(async () => {
        throw new Error('boom');
      }),
      /boom/,
    );
    assert.equal(await limiter.run(async () => 1), 1);
    assert.equal(limiter.active, 0);
  });
});

describe('IdentityCache over a loopback PLC', () => {
  it('resolves 2000 DIDs in parallel with a bounded number of requests in flight', async (t) => {
    const plc = await startTestPlc();
    const fetcher = createSafeFetcher({ allowPrivate: true, allowInsecure: true, keepAlive: true });
    try {
      const b32 = 'abcdefghijklmnopqrstuvwxyz234567';
      const plcDid = (i: number): string => {
        let s = '';
        for (let n = i; n > 0; n = Math.floor(n / 32)) s = b32[n % 32] + s;
        return `did:plc:${s.padStart(24, 'a')}`;
      };
      const unique = Array.from({ length: 2000 }, (_, i) => plcDid(i));
      assert.equal(new Set(unique).size, 2000);
      for (const did of unique) plc.docs.set(did, makeDidDocument(did, { handle: 'x.test' }));
      let maxInflight = 0;
      plc.delayMs = 1;
      const cache = new IdentityCache({
        resolver: new DidResolver({ fetcher, plcUrl: plc.url }),
        maxConcurrent: 16,
      });
      const probe = setInterval(() => {
        maxInflight = Math.max(maxInflight, cache.stats().running);
      }, 1);
      const started = performance.now();
      const all = await Promise.all([...unique, ...unique].map((d) => cache.resolve(d)));
      const elapsed = performance.now() - started;
      clearInterval(probe);
      assert.equal(all.length, unique.length * 2);
      const s = cache.stats();
      assert.equal(s.resolutions, unique.length, 'each DID fetched once');
      assert.equal(s.size, unique.length);
      assert.ok(maxInflight <= 16);
      let requests = 0;
      for (const n of plc.hits.values()) requests += n;
      assert.equal(requests, unique.length);
      t.diagnostic(
        `resolved ${unique.length} DIDs via loopback PLC in ${elapsed.toFixed(0)} ms (max ${maxInflight} in flight)`,
      );
    } finally {
      fetcher.close();
      await plc.close();
    }
  });
});

// Issue 12: a hostile host must not be able to pin memory through the cache.
describe('IdentityCache bounds', () => {
  it('refuses a DID over 2 KB before the resolver and never caches it', async () => {
    const { resolver, cache } = setup();
    const long = `did:plc:${'a'.repeat(4 * 1024 * 1024)}`;
    const err = await cache.resolve(long).then(
      () => assert.fail('resolved'),
      (e: Error) => e,
    );
    assert.ok(err.message.length < 512, 'the error does not carry the DID');
    assert.deepEqual(resolver.calls, []);
    assert.equal(cache.stats().size, 0);
    assert.equal(cache.get(long), undefined);
  });

  it('is bounded in bytes as well as entries, negative entries included', async () => {
    const { resolver, cache } = setup({ maxEntries: 1_000_000, maxBytes: 64 * 1024 });
    for (let i = 0; i < 200; i++) {
      const did = `did:plc:${String(i).padStart(4, '0')}${'x'.repeat(1500)}`;
      const p = cache.resolve(did);
      await tick();
      resolver.answer(did, new DidNotFoundError(did, false));
      await assert.rejects(p);
    }
    const s = cache.stats();
    assert.ok(s.bytes <= 64 * 1024, `bytes ${s.bytes}`);
    assert.ok(s.size < 200 && s.size > 0, `size ${s.size}`);
    assert.ok(s.evictions > 0);
  });

  it('truncates upstream error text it keeps', async () => {
    const { resolver, cache } = setup();
    const p = cache.resolve('did:plc:bad');
    await tick();
    resolver.answer('did:plc:bad', new DidResolutionError('did:plc:bad', 'y'.repeat(1_000_000), false));
    await assert.rejects(p);
    const again = await cache.resolve('did:plc:bad').then(
      () => assert.fail('resolved'),
      (e: Error) => e,
    );
    assert.ok(again.message.length <= 600, `message of ${again.message.length} chars`);
    assert.ok((again.stack ?? '').length <= 700);
  });
});
