// HostManager as the admin API's HostControl (host-control.ts): hostnames in,
// results out, against a real HostManager and loopback sim hosts; and the
// live-state snapshot that answers the admin host listing.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SimNetwork } from '../../sim/network.ts';
import { RecordingSink, testConfig } from '../../test/support/ingest-support.ts';
import { type TempMetadataStore, tempMetadataStore } from '../../test/support/temp.ts';
import { waitFor } from '../../test/support/wait.ts';
import { createSafeFetcher } from '../protocol/identity/safe-fetch.ts';
import { type HostSnapshot, LiveStateSnapshot } from './host-control.ts';
import { HostManager } from './host-manager.ts';
import { TRUSTED_RATE_FACTOR } from './rate-limiter.ts';

describe('HostManager as HostControl', () => {
  let net: SimNetwork;
  let db: TempMetadataStore;
  let m: HostManager;
  const fetcher = createSafeFetcher({ allowPrivate: true, allowInsecure: true });
  let first: string;
  let second: string;

  before(async () => {
    net = await SimNetwork.start({ hosts: 2, accountsPerHost: 1, seed: 12 });
    db = await tempMetadataStore({ cursorFlushMs: 50 });
    m = new HostManager({
      store: db.store,
      sink: new RecordingSink(),
      fetcher,
      config: testConfig({
        newHostsPerDay: 1,
        hostRatePerSecond: 50,
        hostRatePerHour: 2500,
        hostRatePerDay: 20_000,
      }),
    });
    await m.start();
    [first, second] = net.hosts.map((h) => h.hostname);
  });
  after(async () => {
    await m.stop();
    await db.destroy();
    await net.stop();
    await fetcher.close();
  });

  it('crawl and add pass the admin flag; refusals become results', async () => {
    const r = await m.requestCrawl(first, { admin: false });
    assert.equal(r.ok, true);
    assert.equal(r.ok && r.host?.hostname, first);
    // The daily new-host limit (1) is used up for the public, not for the admin.
    const refused = await m.requestCrawl(second, { admin: false });
    assert.equal(!refused.ok && refused.status, 429);
    assert.equal(!refused.ok && refused.error, 'RateLimitExceeded');
    assert.equal((await m.addHost(second)).ok, true);
    await db.store.addDomainBan('banned.example');
    assert.deepEqual(await m.requestCrawl('banned.example', { admin: false }), {
      ok: false,
      status: 400,
      error: 'HostBanned',
      message: 'domain is banned',
    });
  });

  it('host actions resolve the hostname to an id', async () => {
    const blocked = await m.blockHost(first);
    assert.equal(blocked.ok && blocked.host?.status, 'blocked');
    const refused = await m.reconnectHost(first);
    assert.equal(refused.ok, false);
    assert.equal(!refused.ok && refused.status, 400);
    assert.equal((await m.unblockHost(first)).ok, true);
    assert.equal((await m.reconnectHost(first)).ok, true);
    const missing = await m.blockHost('nope.example');
    assert.equal(!missing.ok && missing.error, 'HostNotFound');
  });

  it('account limit and trust are store writes that the live limits follow', async () => {
    const r = await m.setAccountLimit(first, 777);
    assert.equal(r.ok && r.host?.accountLimit, 777);
    const t2 = await m.setTrusted(first, true);
    assert.equal(t2.ok && t2.host?.trusted, true);
    const id = t2.ok ? t2.host?.id : undefined;
    await waitFor(() => m.list().some((s) => s.hostId === id));
    assert.equal(m.liveState(id!)?.defaultRateLimits?.perSecond, 50 * TRUSTED_RATE_FACTOR);
  });

  it('rate limits go to the manager by host id', async () => {
    const r = await m.setRateLimits(second, { perSecond: 9 });
    assert.equal(r.ok, true);
    const id = r.ok ? r.host?.id : undefined;
    assert.deepEqual(m.liveState(id!)?.rateLimitOverride, { perSecond: 9 });
    const missing = await m.setRateLimits('nope.example', { perSecond: 9 });
    assert.equal(!missing.ok && missing.error, 'HostNotFound');
  });

  it('cursor reset answers with the host as the reset left it', async () => {
    const r = await m.resetCursor(second, 42);
    assert.equal(r.ok && r.host?.cursor, 42);
    const live = await m.resetCursor(second, null);
    assert.equal(live.ok && live.host?.cursor, 0);
    const missing = await m.resetCursor('nope.example', 1);
    assert.equal(!missing.ok && missing.error, 'HostNotFound');
    await m.blockHost(second);
    const blocked = await m.resetCursor(second, 1);
    assert.deepEqual(blocked, {
      ok: false,
      status: 409,
      error: 'HostBlocked',
      message: `host ${second} is blocked; unblock it before resetting its cursor`,
    });
    await m.unblockHost(second);
  });
});

describe('LiveStateSnapshot', () => {
  it('live state comes from one list() snapshot per second', () => {
    let t = 0;
    let listCalls = 0;
    const snapshot: HostSnapshot = {
      hostId: 1,
      hostname: 'pds.example.com',
      state: 'connected',
      connected: true,
      cursor: 5,
      failures: 0,
      inFlight: 0,
      queued: 0,
      pastCursor: 3,
      paused: false,
      rateLimits: { perSecond: 50, perHour: 2500, perDay: 20000 },
      defaultRateLimits: { perSecond: 50, perHour: 2500, perDay: 20000 },
      lastError: 'socket hang up',
    };
    const live = new LiveStateSnapshot(
      () => {
        listCalls++;
        return [snapshot];
      },
      () => t,
    );
    assert.deepEqual(live.get(1), {
      connected: true,
      rateLimits: { perSecond: 50, perHour: 2500, perDay: 20000 },
      defaultRateLimits: { perSecond: 50, perHour: 2500, perDay: 20000 },
      state: 'connected',
      cursor: 5,
      inFlight: 0,
      queued: 0,
      pastCursor: 3,
      paused: false,
      failures: 0,
      lastError: 'socket hang up',
    });
    assert.equal(live.get(9999), undefined);
    assert.equal(listCalls, 1);
    t += 1000;
    live.get(1);
    assert.equal(listCalls, 2);
    live.invalidate();
    live.get(1);
    assert.equal(listCalls, 3, 'a change drops the snapshot');
  });
});

// A real HostManager (one loopback sim host): the override reaches the live
// limiter, survives a restart of the manager, and setting it back clears it.
describe('per-host rate-limit overrides through a real HostManager', () => {
  let net: SimNetwork;
  let db: TempMetadataStore;
  const fetcher = createSafeFetcher({ allowPrivate: true, allowInsecure: true });
  const cfg = testConfig({ hostRatePerSecond: 50, hostRatePerHour: 2500, hostRatePerDay: 20_000 });

  before(async () => {
    net = await SimNetwork.start({ hosts: 1, accountsPerHost: 1, seed: 11 });
    db = await tempMetadataStore({ cursorFlushMs: 50 });
  });
  after(async () => {
    await db.destroy();
    await net.stop();
    await fetcher.close();
  });

  it('applies at once, persists, and clears when set back to the default', async () => {
    const hostname = net.hosts[0].hostname;
    const start = async () => {
      const m = new HostManager({ store: db.store, sink: new RecordingSink(), fetcher, config: cfg });
      await m.start();
      return m;
    };
    let m = await start();
    try {
      const id = (await m.crawl(hostname, { admin: true })).host.id;
      const hc = m;
      const defaults = { perSecond: 50, perHour: 2500, perDay: 20_000 }; // no accounts seen yet
      await waitFor(() => m.list().length === 1);
      assert.deepEqual(m.list()[0].rateLimits, defaults);

      const r = await hc.setRateLimits?.(hostname, { perSecond: 3, perDay: 99 });
      assert.equal(r?.ok, true);
      const effective = { perSecond: 3, perHour: 2500, perDay: 99 };
      assert.deepEqual(m.list()[0].rateLimits, effective);
      assert.deepEqual(m.list()[0].rateLimitOverride, { perSecond: 3, perDay: 99 });
      assert.deepEqual(hc.liveState?.(id)?.rateLimits, effective);
      assert.deepEqual(hc.liveState?.(id)?.rateLimitOverride, { perSecond: 3, perDay: 99 });

      // A periodic refresh keeps the override.
      await m.refreshLimits();
      assert.deepEqual(m.list()[0].rateLimits, effective);

      await m.stop();
      m = await start();
      await waitFor(() => m.list().length === 1);
      assert.deepEqual(m.list()[0].rateLimits, effective, 'override survives a restart');

      await m.setRateLimitsById(id, { perSecond: 50 });
      assert.deepEqual(m.list()[0].rateLimitOverride, { perDay: 99 });
      await m.setRateLimitsById(id, { perDay: 20_000 });
      assert.deepEqual(m.list()[0].rateLimits, defaults);
      assert.equal(m.list()[0].rateLimitOverride, undefined);
      assert.deepEqual(await db.store.getSetting('ingestHostRateOverrides'), {});
      await assert.rejects(m.setRateLimitsById(999_999, { perSecond: 1 }), /unknown host/);
    } finally {
      await m.stop();
    }
  });
});
