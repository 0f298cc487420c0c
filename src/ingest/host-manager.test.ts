// Integration tests of the ingest stage against the simulated network (all
// loopback, ephemeral ports): many hosts, requestCrawl over HTTP, hosts that
// drop and come back, hosts that fail until offline, rate limiting without
// loss, cursor resume across a relay restart with no loss and no duplicate,
// transport faults, FutureCursor, bootstrap from a seed relay, and operator
// cursor resets (back to an earlier seq with frames in flight, to live, and
// reviving an idle host).
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { SimNetwork } from '../../sim/network.ts';
import {
  RecordingSink,
  range,
  type RecordingSink as Sink,
  testConfig,
} from '../../test/support/ingest-support.ts';
import { type TempMetadataStore, tempMetadataStore } from '../../test/support/temp.ts';
import { waitFor } from '../../test/support/wait.ts';
import { RateLimiter } from '../api/rate-limit.ts';
import { registerXrpc, XRPC } from '../api/xrpc.ts';
import { createRouteHandler } from '../http/dispatch.ts';
import { Router } from '../http/router.ts';
import { createSafeFetcher } from '../protocol/identity/safe-fetch.ts';
import { openMetadataStore } from '../store/open-store.ts';
import { HostManager } from './host-manager.ts';
import { CrawlRefusedError } from './host-policy.ts';
import type { IngestConfig } from './ingest-config.ts';

const fetcher = createSafeFetcher({ allowPrivate: true, allowInsecure: true });

interface Rig {
  manager: HostManager;
  sink: Sink;
  db: TempMetadataStore;
}

async function rig(cfg: Partial<IngestConfig> = {}, db?: TempMetadataStore, sink?: Sink): Promise<Rig> {
  const d = db ?? (await tempMetadataStore({ cursorFlushMs: 50 }));
  const s = sink ?? new RecordingSink();
  const manager = new HostManager({ store: d.store, sink: s, fetcher, config: testConfig(cfg) });
  await manager.start();
  return { manager, sink: s, db: d };
}

async function teardown(r: Rig): Promise<void> {
  await r.manager.stop();
  await r.db.destroy();
}

function dropped(m: HostManager, reason: string): Promise<number> {
  return m.metrics.dropped.get().then((v) => v.values.find((x) => x.labels.reason === reason)?.value ?? 0);
}

describe('HostManager against the simulated network', () => {
  let net: SimNetwork;
  before(async () => {
    net = await SimNetwork.start({ hosts: 12, accountsPerHost: 2, seed: 5 });
  });
  after(async () => {
    await net.stop();
  });

  it('subscribes to many hosts and hands on every event once, in order per host', async () => {
    const r = await rig();
    try {
      const hosts = net.hosts.slice(0, 10);
      const ids: number[] = [];
      for (const h of hosts) ids.push((await r.manager.crawl(h.hostname, { admin: true })).host.id);
      await waitFor(() => r.manager.connectedCount === 10, 'connections');
      const start = hosts.map((h) => h.seq);
      net.step(300);
      await waitFor(() => hosts.every((h, i) => (r.sink.seqs.get(ids[i])?.length ?? 0) === h.seq - start[i]));
      hosts.forEach((h, i) => {
        assert.deepEqual(r.sink.seqs.get(ids[i]) ?? [], range(start[i] + 1, h.seq), h.hostname);
      });
      assert.equal(await r.manager.accountLimitById(ids[0]), 100);
      assert.equal(await r.manager.accountLimitById(999_999), undefined);
      const snap = r.manager.list();
      assert.equal(snap.length, 10);
      assert.ok(snap.every((s) => s.connected && s.inFlight === 0));
    } finally {
      await teardown(r);
    }
  });

  it('requestCrawl over HTTP adds a new host; the daily limit refuses more; admin bypasses it', async () => {
    const r = await rig({ newHostsPerDay: 1 });
    // The API's requestCrawl route (src/api/xrpc.ts) with this HostManager as its HostControl.
    const routes = new Router().use((router) =>
      registerXrpc(router, {
        store: r.db.store,
        hosts: r.manager,
        crawlLimiter: new RateLimiter({ perMinute: 0 }),
        requestCrawlDefault: true,
        maxBodyBytes: 64 * 1024,
      }),
    );
    const handle = createRouteHandler(routes);
    const server: Server = createServer((req, res) => {
      void handle(req, res).then((handled) => {
        if (!handled) res.writeHead(404).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const relayUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const [a, b, c] = net.hosts.slice(0, 3);
      assert.equal(await a.requestCrawl(relayUrl), 200);
      assert.equal(await a.requestCrawl(relayUrl), 200); // known host: no new slot used
      const host = await r.db.store.getHostByHostname(a.hostname);
      assert.equal(host?.status, 'active');
      assert.equal(host?.tls, false);
      await waitFor(() => r.manager.connectedCount === 1);
      const before = a.seq;
      a.writeRecord(net.accounts.find((x) => x.host === 0)!.did);
      await waitFor(() => (r.sink.seqs.get(host!.id)?.length ?? 0) === 1);
      assert.deepEqual(r.sink.seqs.get(host!.id), [before + 1]);

      assert.equal(await b.requestCrawl(relayUrl), 429);
      const res = await fetch(new URL(XRPC.requestCrawl, relayUrl), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ hostname: b.hostname }),
      });
      assert.deepEqual(await res.json(), {
        error: 'RateLimitExceeded',
        message: 'new host limit reached (1 per day)',
      });
      const bad = await fetch(new URL(XRPC.requestCrawl, relayUrl), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"hostname": "no_such host"}',
      });
      assert.equal(bad.status, 400);
      assert.equal(((await bad.json()) as { error: string }).error, 'InvalidRequest');
      assert.equal((await fetch(new URL(XRPC.requestCrawl, relayUrl))).status, 405);

      const added = await r.manager.crawl(c.hostname, { admin: true });
      assert.equal(added.created, true);
      await waitFor(() => r.manager.connectedCount === 2);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await teardown(r);
    }
  });

  it('a host that drops its sockets or goes down and comes back loses nothing and duplicates nothing', async () => {
    const r = await rig();
    const h = net.hosts[3];
    const dids = net.accounts.filter((x) => x.host === 3).map((x) => x.did);
    try {
      const { host } = await r.manager.crawl(h.hostname, { admin: true });
      await waitFor(() => r.manager.connectedCount === 1);
      const start = h.seq;
      for (let i = 0; i < 5; i++) h.writeRecord(dids[i % dids.length]);
      h.injectFault('abruptDisconnect');
      for (let i = 0; i < 5; i++) h.writeRecord(dids[i % dids.length]);
      await waitFor(() => r.manager.subscriber(host.id)?.cursor === h.seq, 'catch-up after drop');
      await h.goOffline();
      await waitFor(() => !r.manager.subscriber(host.id)!.connected);
      for (let i = 0; i < 5; i++) h.writeRecord(dids[i % dids.length]); // written while the relay cannot see them
      await h.goOnline();
      await waitFor(() => r.manager.subscriber(host.id)?.cursor === h.seq, 'catch-up after outage');
      assert.deepEqual(r.sink.seqs.get(host.id), range(start + 1, h.seq));
      assert.ok((await r.manager.metrics.reconnects.get()).values[0].value >= 2);
    } finally {
      await teardown(r);
    }
  });

  it('a host that keeps failing is marked offline, and requestCrawl revives it', async () => {
    const r = await rig({ hostMaxFailures: 3, backoffBaseMs: 5, backoffMaxMs: 20 });
    const h = net.hosts[4];
    try {
      const { host } = await r.manager.crawl(h.hostname, { admin: true });
      await waitFor(() => r.manager.connectedCount === 1);
      await h.goOffline();
      await waitFor(async () => (await r.db.store.getHost(host.id))?.status === 'offline', 'offline');
      const sub = r.manager.subscriber(host.id)!;
      assert.equal(sub.state, 'inactive');
      assert.equal((await r.db.store.getHost(host.id))?.failures, 3);
      // still down: requestCrawl is refused (describeServer fails) and nothing is dialled
      await assert.rejects(r.manager.crawl(h.hostname), CrawlRefusedError);
      await h.goOnline();
      await r.manager.crawl(h.hostname);
      await waitFor(() => sub.connected, 'revived');
      const after = await r.db.store.getHost(host.id);
      assert.equal(after?.status, 'active');
      assert.equal(after?.failures, 0);
    } finally {
      await teardown(r);
    }
  });

  it('rate limiting slows a flooding host without losing or reordering its events', async () => {
    const r = await rig({ hostRatePerSecond: 40 });
    const h = net.hosts[5];
    const dids = net.accounts.filter((x) => x.host === 5).map((x) => x.did);
    try {
      const { host } = await r.manager.crawl(h.hostname, { admin: true });
      await waitFor(() => r.manager.connectedCount === 1);
      const start = h.seq;
      const t0 = performance.now();
      for (let i = 0; i < 120; i++) h.writeRecord(dids[i % dids.length]);
      await waitFor(() => (r.sink.seqs.get(host.id)?.length ?? 0) === 120, 'all 120 events');
      const elapsed = performance.now() - t0;
      // 40 burst, then 40/s: ~2 s for the other 80
      assert.ok(elapsed > 1500, `finished too fast for the limit: ${elapsed} ms`);
      assert.deepEqual(r.sink.seqs.get(host.id), range(start + 1, h.seq));
      assert.ok((await r.manager.metrics.throttled.get()).values[0].value > 0);
      assert.ok(r.sink.maxInFlight <= 8);
    } finally {
      await teardown(r);
    }
  });

  it('resumes from the saved cursor after a restart: no lost and no duplicated event', async () => {
    const db = await tempMetadataStore({ cursorFlushMs: 20 });
    const sink = new RecordingSink();
    // completions out of order and slow enough that frames are in flight at shutdown
    let k = 0;
    sink.delay = () => (k++ * 7) % 13;
    const hosts = net.hosts.slice(6, 9);
    const start = hosts.map((h) => h.seq);
    let r = await rig({ hostMaxInFlight: 4 }, db, sink);
    const ids: number[] = [];
    try {
      for (const h of hosts) ids.push((await r.manager.crawl(h.hostname, { admin: true })).host.id);
      await waitFor(() => r.manager.connectedCount === 3);
      const dids = hosts.map((_, i) => net.accounts.filter((x) => x.host === 6 + i).map((x) => x.did));
      for (let i = 0; i < 40; i++) for (const [j, h] of hosts.entries()) h.writeRecord(dids[j][i % 2]);
      await waitFor(() => sink.count > 30);
      await r.manager.stop(); // mid-stream: drains in-flight frames, flushes cursors
      const saved = await Promise.all(ids.map(async (id) => (await db.store.getHost(id))!.cursor));
      ids.forEach((id, i) => {
        assert.equal(
          saved[i],
          Math.max(start[i], ...(sink.seqs.get(id) ?? [start[i]])),
          'saved cursor = last finished',
        );
      });
      for (let i = 0; i < 10; i++) for (const [j, h] of hosts.entries()) h.writeRecord(dids[j][i % 2]); // while the relay is down
      await db.reopen();
      r = await rig({ hostMaxInFlight: 4 }, db, sink);
      await waitFor(() => r.manager.connectedCount === 3);
      for (let i = 0; i < 10; i++) for (const [j, h] of hosts.entries()) h.writeRecord(dids[j][i % 2]);
      await waitFor(() => hosts.every((h, i) => sink.seqs.get(ids[i])?.length === h.seq - start[i]));
      hosts.forEach((h, i) => {
        assert.deepEqual(
          sink.sorted(ids[i]),
          range(start[i] + 1, h.seq),
          `host ${i}: every event exactly once`,
        );
      });
    } finally {
      await teardown(r);
    }
  });

  it('drops bad frames by reason, reconnects after an oversized one, and recovers every real event', async () => {
    const r = await rig();
    const h = net.hosts[9];
    const did = net.accounts.find((x) => x.host === 9)!.did;
    try {
      const { host } = await r.manager.crawl(h.hostname, { admin: true });
      await waitFor(() => r.manager.connectedCount === 1);
      const start = h.seq;
      h.injectFault('malformedCbor');
      h.writeRecord(did);
      h.injectFault('truncatedFrame');
      h.writeRecord(did);
      h.injectFault('oversizedFrame');
      h.writeRecord(did);
      h.writeRecord(did);
      await waitFor(() => r.manager.subscriber(host.id)?.cursor === h.seq, 'recovery');
      assert.deepEqual(r.sink.sorted(host.id), range(start + 1, h.seq));
      assert.ok((await dropped(r.manager, 'malformed')) >= 2);
      assert.ok((await dropped(r.manager, 'too-large')) >= 1);
    } finally {
      await teardown(r);
    }
  });

  it('a FutureCursor from upstream marks the host idle; admin reconnect revives it', async () => {
    const r = await rig();
    const h = net.hosts[10];
    try {
      const created = await r.db.store.createHost({ hostname: h.hostname, tls: false });
      await r.db.store.resetHostCursor(created.value.id, h.seq + 1000);
      await r.manager.reconnect(created.value.id);
      await waitFor(async () => (await r.db.store.getHost(created.value.id))?.status === 'idle', 'idle');
      assert.equal(r.manager.subscriber(created.value.id)?.state, 'inactive');
      assert.ok((await dropped(r.manager, 'error-frame')) >= 1);
      await r.db.store.resetHostCursor(created.value.id, h.seq);
      await r.manager.blockHostById(created.value.id);
      assert.equal((await r.db.store.getHost(created.value.id))?.status, 'blocked');
      await assert.rejects(r.manager.crawl(h.hostname), (e: CrawlRefusedError) => e.error === 'HostBanned');
      await r.manager.unblockHostById(created.value.id);
      await waitFor(() => r.manager.connectedCount === 1, 'unblocked');
    } finally {
      await teardown(r);
    }
  });

  it('resetCursor to an earlier seq waits for in-flight frames, then re-reads from it; null reads live', async () => {
    const sink = new RecordingSink();
    const r = await rig({}, await tempMetadataStore({ cursorFlushMs: 0 }), sink); // cursors reach storage only on flush or reset
    const h = net.hosts[1];
    const did = net.accounts.find((x) => x.host === 1)!.did;
    try {
      const { host } = await r.manager.crawl(h.hostname, { admin: true });
      await waitFor(() => r.manager.connectedCount === 1);
      const n = h.seq;
      for (let i = 0; i < 6; i++) h.writeRecord(did);
      await waitFor(() => r.manager.subscriber(host.id)?.cursor === n + 6, 'first six');
      // The next three are held by the sink (first delivery only) so they are in flight at the reset.
      const held = new Set([n + 7, n + 8, n + 9]);
      sink.delay = (f) => (held.delete(f.upstreamSeq) ? 400 : 0);
      for (let i = 0; i < 3; i++) h.writeRecord(did);
      await waitFor(() => sink.inFlight === 3, 'three in flight');
      const old = r.manager.subscriber(host.id)!;

      const m = n + 2;
      const reset = await r.manager.resetCursorById(host.id, m);
      assert.equal(reset.cursor, m);
      assert.equal(reset.status, 'active');
      assert.equal(sink.inFlight, 0, 'in-flight frames finished before the reset');
      assert.equal(old.state, 'stopped');
      // Their cursor advance (to n + 9) was discarded, not written over the reset.
      await r.db.store.flushCursors();
      assert.equal((await r.db.store.getHost(host.id))?.cursor, m);
      assert.notEqual(r.manager.subscriber(host.id), old, 'a fresh subscriber');

      await waitFor(() => r.manager.subscriber(host.id)?.cursor === n + 9, 're-read');
      // n+1..n+9 once, then everything after m again, in order.
      assert.deepEqual(sink.seqs.get(host.id), [...range(n + 1, n + 9), ...range(m + 1, n + 9)]);
      await r.db.store.flushCursors();
      assert.equal((await r.db.store.getHost(host.id))?.cursor, n + 9);

      // null: no cursor, so nothing already written is read again; only new events arrive.
      const live = await r.manager.resetCursorById(host.id, null);
      assert.equal(live.cursor, 0);
      assert.equal((await r.db.store.getHost(host.id))?.cursor, 0);
      await waitFor(() => r.manager.connectedCount === 1, 'live reconnect');
      const before = sink.seqs.get(host.id)!.length;
      h.writeRecord(did);
      h.writeRecord(did);
      await waitFor(() => r.manager.subscriber(host.id)?.cursor === n + 11, 'live events');
      assert.deepEqual(sink.seqs.get(host.id)!.slice(before), [n + 10, n + 11]);
      await r.db.store.flushCursors();
      assert.equal((await r.db.store.getHost(host.id))?.cursor, n + 11);
    } finally {
      await teardown(r);
    }
  });

  it('resetCursor revives an idle (FutureCursor) host, refuses a blocked one, and checks its input', async () => {
    const sink = new RecordingSink();
    const r = await rig({}, undefined, sink);
    const h = net.hosts[0];
    const did = net.accounts.find((x) => x.host === 0)!.did;
    try {
      const created = await r.db.store.createHost({ hostname: h.hostname, tls: false });
      const id = created.value.id;
      h.writeRecord(did);
      h.writeRecord(did);
      await r.db.store.resetHostCursor(id, h.seq + 1000); // as if the PDS had reset its sequence
      await r.manager.reconnect(id);
      await waitFor(async () => (await r.db.store.getHost(id))?.status === 'idle', 'idle');

      const back = h.seq - 2;
      const reset = await r.manager.resetCursorById(id, back);
      assert.equal(reset.status, 'active');
      assert.equal(reset.failures, 0);
      await waitFor(() => r.manager.subscriber(id)?.cursor === h.seq, 'revived from the new cursor');
      assert.deepEqual(sink.seqs.get(id), [back + 1, back + 2]);
      assert.equal((await r.db.store.getHost(id))?.status, 'active');

      await assert.rejects(r.manager.resetCursorById(id, -1), (e: CrawlRefusedError) => e.status === 400);
      await assert.rejects(r.manager.resetCursorById(id, 1.5), (e: CrawlRefusedError) => e.status === 400);
      await assert.rejects(r.manager.resetCursorById(999_999, 1), (e: CrawlRefusedError) => e.status === 404);
      await r.manager.blockHostById(id);
      await assert.rejects(
        r.manager.resetCursorById(id, 1),
        (e: CrawlRefusedError) => e.status === 409 && e.error === 'HostBlocked' && /blocked/.test(e.message),
      );
      assert.equal((await r.db.store.getHost(id))?.status, 'blocked');
      assert.equal((await r.db.store.getHost(id))?.cursor, h.seq, 'cursor untouched');
    } finally {
      await teardown(r);
    }
  });

  it('a cursor reset the store fails puts the host back on the cursor the store holds', async () => {
    const sink = new RecordingSink();
    const r = await rig({}, undefined, sink);
    const h = net.hosts[2];
    const did = net.accounts.find((x) => x.host === 2)!.did;
    try {
      const { host } = await r.manager.crawl(h.hostname, { admin: true });
      await waitFor(() => r.manager.connectedCount === 1, 'connected');
      h.writeRecord(did);
      await waitFor(() => r.manager.subscriber(host.id)?.cursor === h.seq, 'first event');
      await r.db.store.flushCursors();
      const stored = (await r.db.store.getHost(host.id))?.cursor;
      const old = r.manager.subscriber(host.id);
      const store = r.db.store as { resetHostCursor: typeof r.db.store.resetHostCursor };
      const real = store.resetHostCursor.bind(r.db.store);
      store.resetHostCursor = async () => {
        store.resetHostCursor = real;
        throw new Error('disk full');
      };
      await assert.rejects(r.manager.resetCursorById(host.id, 1), /disk full/);
      assert.equal((await r.db.store.getHost(host.id))?.cursor, stored, 'cursor untouched');
      // a fresh subscriber from the stored cursor, reading on
      await waitFor(() => r.manager.connectedCount === 1, 'resubscribed');
      assert.notEqual(r.manager.subscriber(host.id), old);
      h.writeRecord(did);
      await waitFor(() => r.manager.subscriber(host.id)?.cursor === h.seq, 'reads on');
      assert.deepEqual(sink.seqs.get(host.id), [h.seq - 1, h.seq]);
    } finally {
      await teardown(r);
    }
  });

  it('staggers start-up dials of saved hosts', async () => {
    const db = await tempMetadataStore({ cursorFlushMs: 50 });
    const ids: number[] = [];
    for (const h of net.hosts.slice(0, 10)) {
      ids.push((await db.store.createHost({ hostname: h.hostname, tls: false })).value.id);
    }
    const hosts = net.hosts.slice(0, 10);
    const before = hosts.map((h) => h.firehose.attachedAt.length);
    const t0 = performance.now();
    const r = await rig({ hostConnectsPerSecond: 20 }, db);
    try {
      await waitFor(() => r.manager.connectedCount === 10, 'all hosts');
      // Saved hosts are dialled 50 ms apart in id order: host i no earlier than
      // i × 50 ms after start (a lower bound, so a busy machine cannot break it;
      // 2 ms of slack for timer rounding).
      hosts.forEach((h, i) => {
        const at = h.firehose.attachedAt[before[i]];
        assert.ok(at !== undefined, `host ${i} connected`);
        assert.ok(at - t0 >= i * 50 - 2, `host ${i} dialled ${Math.round(at - t0)} ms after start`);
      });
    } finally {
      await teardown(r);
    }
  });

  it('a frame the sink refuses is not skipped: the cursor stays before it and a reconnect re-reads it', async () => {
    const sink = new RecordingSink();
    const r = await rig({}, undefined, sink);
    const h = net.hosts[2];
    const did = net.accounts.find((x) => x.host === 2)!.did;
    try {
      const { host } = await r.manager.crawl(h.hostname, { admin: true });
      await waitFor(() => r.manager.connectedCount === 1);
      const start = h.seq;
      let refusedOnce = false;
      sink.fail = (f) => {
        if (!refusedOnce && f.upstreamSeq === start + 3) {
          refusedOnce = true;
          return true;
        }
        return false;
      };
      for (let i = 0; i < 6; i++) h.writeRecord(did);
      await waitFor(() => r.manager.subscriber(host.id)?.cursor === h.seq, 'recovery');
      assert.ok(refusedOnce);
      // each frame is handed on once: the refused one on the re-read, and the
      // ones finished behind it are not handed on again (they are out already)
      assert.deepEqual(sink.sorted(host.id), range(start + 1, h.seq));
      assert.ok((await r.manager.metrics.alreadyRelayed.get()).values[0].value > 0);
    } finally {
      await teardown(r);
    }
  });

  it('a host subscribed live stores its first cursor before handing anything on', async () => {
    // no timer flush: only the immediate write can make the cursor durable
    const db = await tempMetadataStore({ cursorFlushMs: 0 });
    const r = await rig({}, db);
    const h = net.hosts[8];
    const did = net.accounts.find((x) => x.host === 8)!.did;
    const durable = await openMetadataStore({ dataDir: db.dir, cursorFlushMs: 0 });
    try {
      const { host } = await r.manager.crawl(h.hostname, { admin: true });
      await waitFor(() => r.manager.connectedCount === 1);
      const start = h.seq;
      h.writeRecord(did);
      h.writeRecord(did);
      await waitFor(() => r.manager.subscriber(host.id)?.cursor === h.seq, 'both frames finished');
      // another connection to the same database sees what is on disk, not the coalescer
      assert.equal((await durable.getHost(host.id))?.cursor, start, 'the cursor before the first frame');
    } finally {
      await durable.close();
      await teardown(r);
    }
  });

  it('bootstraps hosts from a seed relay listHosts, with the same checks', async () => {
    const listed = [
      { hostname: net.hosts[11].hostname, seq: 5, accountCount: 2, status: 'active' },
      { hostname: 'bad_host', status: 'active' },
      { hostname: net.hosts[0].hostname, status: 'offline' },
    ];
    const seed = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname !== '/xrpc/com.atproto.sync.listHosts') return void res.writeHead(404).end();
      const body = url.searchParams.get('cursor') ? { hosts: [] } : { cursor: 'p2', hosts: listed };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    });
    await new Promise<void>((resolve) => seed.listen(0, '127.0.0.1', resolve));
    const upstream = `127.0.0.1:${(seed.address() as AddressInfo).port}`;
    const r = await rig({ bootstrapHosts: true, upstream });
    try {
      await r.manager.bootstrapDone;
      const hosts = await r.db.store.listHosts({ limit: 10 });
      assert.deepEqual(
        hosts.map((x) => x.hostname),
        [net.hosts[11].hostname],
      );
      await waitFor(() => r.manager.connectedCount === 1);
    } finally {
      await teardown(r);
      await new Promise<void>((resolve) => seed.close(() => resolve()));
    }
  });
});
