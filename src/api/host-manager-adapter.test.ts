import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SimNetwork } from '../../sim/network.ts';
import { waitFor } from '../../test/support/wait.ts';
import { HostManager, type HostSnapshot } from '../ingest/host-manager.ts';
import { CrawlRefusedError } from '../ingest/host-policy.ts';
import { RecordingSink, type TempStore, tempStore, testConfig } from '../ingest/test-support.ts';
import { createSafeFetcher } from '../protocol/identity/safe-fetch.ts';
import type { Host, MetadataStore } from '../store/metadata-store.ts';
import { openMetadataStore } from '../store/open-store.ts';
import { type HostManagerLike, hostControlFromManager } from './host-manager-adapter.ts';

describe('hostControlFromManager', () => {
  let dir: string;
  let store: MetadataStore;
  let host: Host;
  const calls: string[] = [];
  let listCalls = 0;
  let t = 0;

  const manager: HostManagerLike = {
    async requestCrawl(hostname, opts) {
      calls.push(`crawl ${String(hostname)} admin=${opts?.admin === true}`);
      if (hostname === 'banned.example') throw new CrawlRefusedError(400, 'HostBanned', 'domain is banned');
      const created = await store.createHost({ hostname: String(hostname) });
      return { host: created.value, created: created.created };
    },
    async blockHost(id) {
      calls.push(`block ${id}`);
      await store.setHostStatus(id, 'blocked');
    },
    async unblockHost(id) {
      calls.push(`unblock ${id}`);
      await store.setHostStatus(id, 'active');
    },
    async reconnect(id) {
      calls.push(`reconnect ${id}`);
      const h = await store.getHost(id);
      if (h?.status === 'blocked') throw new Error('host is blocked');
    },
    async refreshLimits() {
      calls.push('refresh');
    },
    async setRateLimits(id, limits) {
      calls.push(`rate-limits ${id} ${JSON.stringify(limits)}`);
      return { perSecond: 50, perHour: 2500, perDay: 20000, ...limits };
    },
    async resetCursor(id, cursor) {
      calls.push(`reset-cursor ${id} ${cursor}`);
      const h = (await store.getHost(id))!;
      if (h.status === 'blocked') throw new CrawlRefusedError(409, 'HostBlocked', 'host is blocked');
      await store.resetHostCursor(id, cursor ?? 0);
      // what the manager answers: the new cursor, even if the store already holds a later one
      await store.resetHostCursor(id, 999);
      return { ...h, cursor: cursor ?? 0 };
    },
    list(): HostSnapshot[] {
      listCalls++;
      return [
        {
          hostId: host.id,
          hostname: host.hostname,
          state: 'connected',
          connected: true,
          cursor: 5,
          failures: 0,
          inFlight: 0,
          queued: 0,
          paused: false,
          rateLimits: { perSecond: 50, perHour: 2500, perDay: 20000 },
          defaultRateLimits: { perSecond: 50, perHour: 2500, perDay: 20000 },
          lastError: 'socket hang up',
        },
      ];
    },
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'api-adapter-'));
    store = await openMetadataStore({ dataDir: dir, cursorFlushMs: 0 });
    host = (await store.createHost({ hostname: 'pds.example.com' })).value;
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('crawl and add pass the admin flag; refusals become results', async () => {
    const hc = hostControlFromManager(manager, store);
    const r = await hc.requestCrawl('new.example', { admin: false });
    assert.equal(r.ok, true);
    assert.equal(r.ok && r.host?.hostname, 'new.example');
    assert.equal((await hc.addHost('other.example')).ok, true);
    assert.deepEqual(await hc.requestCrawl('banned.example', { admin: false }), {
      ok: false,
      status: 400,
      error: 'HostBanned',
      message: 'domain is banned',
    });
    assert.deepEqual(calls.slice(0, 3), [
      'crawl new.example admin=false',
      'crawl other.example admin=true',
      'crawl banned.example admin=false',
    ]);
  });

  it('host actions resolve the hostname to an id', async () => {
    const hc = hostControlFromManager(manager, store);
    const blocked = await hc.blockHost('pds.example.com');
    assert.equal(blocked.ok && blocked.host?.status, 'blocked');
    const refused = await hc.reconnectHost('pds.example.com');
    assert.equal(refused.ok, false);
    assert.equal(!refused.ok && refused.status, 400);
    assert.equal((await hc.unblockHost('pds.example.com')).ok, true);
    assert.equal((await hc.reconnectHost('pds.example.com')).ok, true);
    const missing = await hc.blockHost('nope.example');
    assert.equal(!missing.ok && missing.error, 'HostNotFound');
  });

  it('account limit and trust are store writes plus a limits refresh', async () => {
    const hc = hostControlFromManager(manager, store);
    calls.length = 0;
    const r = await hc.setAccountLimit('pds.example.com', 777);
    assert.equal(r.ok && r.host?.accountLimit, 777);
    const t2 = await hc.setTrusted('pds.example.com', true);
    assert.equal(t2.ok && t2.host?.trusted, true);
    assert.deepEqual(calls, ['refresh', 'refresh']);
  });

  it('rate limits go to the manager by host id', async () => {
    const hc = hostControlFromManager(manager, store);
    calls.length = 0;
    const r = await hc.setRateLimits?.('pds.example.com', { perSecond: 9 });
    assert.equal(r?.ok, true);
    assert.deepEqual(calls, [`rate-limits ${host.id} {"perSecond":9}`]);
    const missing = await hc.setRateLimits?.('nope.example', { perSecond: 9 });
    assert.equal(missing?.ok === false && missing.error, 'HostNotFound');
  });

  it('cursor reset goes to the manager by host id and answers with its host', async () => {
    const hc = hostControlFromManager(manager, store);
    calls.length = 0;
    const r = await hc.resetCursor?.('pds.example.com', 42);
    assert.equal(r?.ok && r.host?.cursor, 42);
    const live = await hc.resetCursor?.('pds.example.com', null);
    assert.equal(live?.ok && live.host?.cursor, 0);
    assert.deepEqual(calls, [`reset-cursor ${host.id} 42`, `reset-cursor ${host.id} null`]);
    const missing = await hc.resetCursor?.('nope.example', 1);
    assert.equal(missing?.ok === false && missing.error, 'HostNotFound');
    await store.setHostStatus(host.id, 'blocked');
    const blocked = await hc.resetCursor?.('pds.example.com', 1);
    assert.deepEqual(blocked, { ok: false, status: 409, error: 'HostBlocked', message: 'host is blocked' });
    await store.setHostStatus(host.id, 'active');
  });

  it('live state comes from one list() snapshot per second', () => {
    const hc = hostControlFromManager(manager, store, () => t);
    listCalls = 0;
    assert.deepEqual(hc.liveState?.(host.id), {
      connected: true,
      rateLimits: { perSecond: 50, perHour: 2500, perDay: 20000 },
      defaultRateLimits: { perSecond: 50, perHour: 2500, perDay: 20000 },
      state: 'connected',
      cursor: 5,
      inFlight: 0,
      queued: 0,
      paused: false,
      failures: 0,
      lastError: 'socket hang up',
    });
    assert.equal(hc.liveState?.(9999), undefined);
    assert.equal(listCalls, 1);
    t += 1000;
    hc.liveState?.(host.id);
    assert.equal(listCalls, 2);
  });
});

// A real HostManager (one loopback sim host): the override reaches the live
// limiter, survives a restart of the manager, and setting it back clears it.
describe('per-host rate-limit overrides through a real HostManager', () => {
  let net: SimNetwork;
  let db: TempStore;
  const fetcher = createSafeFetcher({ allowPrivate: true, allowInsecure: true });
  const cfg = testConfig({ hostRatePerSecond: 50, hostRatePerHour: 2500, hostRatePerDay: 20_000 });

  before(async () => {
    net = await SimNetwork.start({ hosts: 1, accountsPerHost: 1, seed: 11 });
    db = await tempStore();
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
      const id = (await m.addHost(hostname)).host.id;
      const hc = hostControlFromManager(m, db.store);
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

      await m.setRateLimits(id, { perSecond: 50 });
      assert.deepEqual(m.list()[0].rateLimitOverride, { perDay: 99 });
      await m.setRateLimits(id, { perDay: 20_000 });
      assert.deepEqual(m.list()[0].rateLimits, defaults);
      assert.equal(m.list()[0].rateLimitOverride, undefined);
      assert.deepEqual(await db.store.getSetting('ingestHostRateOverrides'), {});
      await assert.rejects(m.setRateLimits(999_999, { perSecond: 1 }), /unknown host/);
    } finally {
      await m.stop();
    }
  });
});
