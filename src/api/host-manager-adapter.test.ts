import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { HostSnapshot } from '../ingest/host-manager.ts';
import { CrawlRefusedError } from '../ingest/host-policy.ts';
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

  it('live state comes from one list() snapshot per second', () => {
    const hc = hostControlFromManager(manager, store, () => t);
    listCalls = 0;
    assert.deepEqual(hc.liveState?.(host.id), {
      connected: true,
      rateLimits: { perSecond: 50, perHour: 2500, perDay: 20000 },
    });
    assert.equal(hc.liveState?.(9999), undefined);
    assert.equal(listCalls, 1);
    t += 1000;
    hc.liveState?.(host.id);
    assert.equal(listCalls, 2);
  });
});
