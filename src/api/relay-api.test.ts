// The HTTP API through a real Relay (ingest → validation → event log →
// firehose) against the simulated network, all on loopback: the public sync
// endpoints agree with the hosts after a crawl; per-host rate-limit overrides
// and live host state show in the admin listing; an admin takedown reaches a
// live consumer, hides the account from replay and from the sync endpoints,
// and stops its new upstream commits, and its reversal undoes all of that;
// admin authentication; probes and /_stats on both ports; and /metrics on
// the metrics port exposes a metric for every category the issue lists.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type StreamReader, subscribe } from '../../sim/consumer.ts';
import { SimNetwork } from '../../sim/network.ts';
import { crawlAll, startTestRelay, TEST_ADMIN_PASSWORD } from '../../test/support/relay-harness.ts';
import { tempDir } from '../../test/support/temp.ts';
import { waitFor } from '../../test/support/wait.ts';
import { cidToString } from '../protocol/cid.ts';
import type { Relay } from '../relay.ts';

type Json = Record<string, unknown>;
const PASSWORD = TEST_ADMIN_PASSWORD;
const ADMIN = { authorization: `Bearer ${PASSWORD}` };

interface Seen {
  seq: number;
  t: string;
  did: string;
  body: Json;
}

function events(reader: StreamReader): Seen[] {
  return reader.frames.flatMap((f) => {
    const header = f.frame?.header;
    if (!f.frame || !header || header.op !== 1 || !('t' in header)) return [];
    const body = f.frame.body as Json;
    return [{ seq: body.seq as number, t: header.t, did: (body.repo ?? body.did) as string, body }];
  });
}

describe('HTTP API through the running relay', () => {
  let net: SimNetwork;
  let dataDir: string;
  let relay: Relay;
  let base: string;
  let metricsBase: string;
  const readers: StreamReader[] = [];

  const get = async (url: string, headers: Record<string, string> = {}) => {
    const res = await fetch(url, { headers });
    return { status: res.status, body: (await res.json()) as Json };
  };
  const post = async (path: string, body: Json, headers: Record<string, string> = ADMIN) => {
    const res = await fetch(`${base}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Json };
  };
  const consumer = async (cursor?: number) => {
    const q = cursor === undefined ? '' : `?cursor=${cursor}`;
    const r = await subscribe(`ws://127.0.0.1:${relay.port}/xrpc/com.atproto.sync.subscribeRepos${q}`);
    readers.push(r);
    return r;
  };
  /**
   * Every frame the host emitted so far has been finished by the relay
   * (relayed or dropped) and validation is idle: the repo heads, written in
   * batches after the append, are in the store the sync endpoints read.
   */
  const caughtUp = async (hostIndex: number) => {
    const host = net.hosts[hostIndex];
    await waitFor(
      () => (relay.hosts?.list() ?? []).some((s) => s.hostname === host.hostname && s.cursor >= host.seq),
      `relay caught up with ${host.hostname}`,
    );
    await relay.validator?.whenIdle();
  };

  before(async () => {
    dataDir = tempDir('atrelay-api-e2e-');
    net = await SimNetwork.start({ hosts: 2, accountsPerHost: 3, seed: 7 });
    relay = await startTestRelay(net, dataDir);
    base = `http://127.0.0.1:${relay.port}`;
    metricsBase = `http://127.0.0.1:${relay.metricsPort}`;
    await crawlAll(relay, net);
    // Two commits per account, so every account has a head at the relay.
    for (let round = 0; round < 2; round++) {
      for (const a of net.accounts) net.hostOf(a.did).writeRecord(a.did);
    }
    await caughtUp(0);
    await caughtUp(1);
  });

  after(async () => {
    for (const r of readers) r.ws.close();
    await relay?.stop();
    await net?.stop();
  });

  it('the public sync endpoints agree with the hosts', async () => {
    const listed = await get(`${base}/xrpc/com.atproto.sync.listRepos?limit=1000`);
    assert.equal(listed.status, 200);
    const mine = new Map((listed.body.repos as Json[]).map((r) => [r.did as string, r]));
    assert.equal(mine.size, net.accounts.length);
    for (const a of net.accounts) {
      const host = net.hostOf(a.did);
      const theirs = await get(`${host.url}/xrpc/com.atproto.sync.getLatestCommit?did=${a.did}`);
      const latest = await get(`${base}/xrpc/com.atproto.sync.getLatestCommit?did=${a.did}`);
      assert.deepEqual(latest, theirs, `getLatestCommit of ${a.did}`);
      assert.deepEqual(mine.get(a.did), {
        did: a.did,
        head: theirs.body.cid,
        rev: theirs.body.rev,
        active: true,
      });
      const status = await get(`${base}/xrpc/com.atproto.sync.getRepoStatus?did=${a.did}`);
      assert.deepEqual(status, { status: 200, body: { did: a.did, active: true, rev: theirs.body.rev } });
    }

    await relay.store?.flushCursors(); // listHosts reads the stored cursor, flushed every few seconds
    const hosts = await get(`${base}/xrpc/com.atproto.sync.listHosts`);
    assert.equal(hosts.status, 200);
    const want = net.hosts.map((h) => ({
      hostname: h.hostname,
      seq: h.seq,
      accountCount: h.accounts.size,
      status: 'active',
    }));
    assert.deepEqual(hosts.body.hosts, want);
    for (const w of want) {
      assert.deepEqual(await get(`${base}/xrpc/com.atproto.sync.getHostStatus?hostname=${w.hostname}`), {
        status: 200,
        body: w,
      });
    }
  });

  it('admin: authentication, live host state and per-host rate-limit overrides', async () => {
    assert.equal((await get(`${base}/admin/hosts`)).body.error, 'AuthRequired');
    const wrong = await get(`${base}/admin/hosts`, { authorization: 'Bearer nope' });
    assert.deepEqual([wrong.status, wrong.body.error], [401, 'InvalidCredentials']);
    const basic = `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}`;
    const listed = await get(`${base}/admin/hosts`, { authorization: basic });
    assert.equal(listed.status, 200);
    const rows = listed.body.hosts as Json[];
    assert.deepEqual(
      rows.map((h) => h.hostname),
      net.hosts.map((h) => h.hostname),
    );
    const row = rows[0];
    assert.equal(row.connected, true);
    const live = row.live as Json;
    assert.equal(live.state, 'open');
    assert.equal(live.cursor, net.hosts[0].seq);
    assert.equal(live.inFlight, 0);
    assert.equal(live.pastCursor, 0);
    assert.equal(live.paused, false);
    assert.equal(live.failures, 0);
    assert.deepEqual(row.rateLimits, row.defaultRateLimits);
    assert.equal(row.rateLimitOverride, undefined);

    const hostname = net.hosts[0].hostname;
    const set = await post('/admin/hosts/rate-limits', { hostname, perSecond: 5000, perDay: 9_000_000 });
    assert.equal(set.status, 200);
    const host = set.body.host as Json;
    // The defaults are recomputed from the current account count on a change.
    const defaults = host.defaultRateLimits as Json;
    assert.equal(defaults.perHour, relay.config.hostRatePerHour + net.hosts[0].accounts.size);
    assert.deepEqual(host.rateLimits, { ...defaults, perSecond: 5000, perDay: 9_000_000 });
    assert.deepEqual(host.rateLimitOverride, { perSecond: 5000, perDay: 9_000_000 });
    const hostId = host.id as number;
    assert.equal(relay.hosts?.list().find((s) => s.hostId === hostId)?.rateLimits.perSecond, 5000);
    assert.deepEqual(await relay.store?.getSetting('ingestHostRateOverrides'), {
      [hostId]: { perSecond: 5000, perDay: 9_000_000 },
    });
    const one = await get(`${base}/admin/hosts/get?hostname=${hostname}`, ADMIN);
    assert.deepEqual(one.body.rateLimits, host.rateLimits);

    // Back to the default (0, or the default value itself): no override left.
    const half = await post('/admin/hosts/rate-limits', { hostname, perDay: 0 });
    assert.deepEqual((half.body.host as Json).rateLimitOverride, { perSecond: 5000 });
    const cleared = await post('/admin/hosts/rate-limits', { hostname, perSecond: defaults.perSecond });
    assert.deepEqual((cleared.body.host as Json).rateLimits, defaults);
    assert.equal((cleared.body.host as Json).rateLimitOverride, undefined);
    assert.deepEqual(await relay.store?.getSetting('ingestHostRateOverrides'), {});
    const unknown = await post('/admin/hosts/rate-limits', { hostname: 'nope.example.com', perSecond: 1 });
    assert.deepEqual([unknown.status, unknown.body.error], [404, 'HostNotFound']);
  });

  it('a takedown reaches live consumers, hides the account, stops its commits; reversal restores it', async () => {
    const victim = net.accounts[0].did;
    const victimHost = net.hostOf(victim);
    const hostIndex = net.hosts.indexOf(victimHost);
    const bystander = net.accounts.find((a) => a.did !== victim && net.hostOf(a.did) === victimHost)!.did;
    const live = await consumer();

    const down = await post('/admin/repos/takedown', { did: victim, reason: 'spam' });
    assert.equal(down.status, 200);
    assert.equal(down.body.known, true);
    const downSeq = down.body.seq as number;
    await waitFor(() => events(live).some((e) => e.seq === downSeq), 'the takedown #account');
    const notice = events(live).find((e) => e.seq === downSeq)!;
    assert.equal(notice.t, '#account');
    assert.deepEqual(
      { did: notice.body.did, active: notice.body.active, status: notice.body.status },
      { did: victim, active: false, status: 'takendown' },
    );

    // Replay from the start skips the account's events; only the takedown notice remains.
    const replay = await consumer(0);
    await waitFor(() => events(replay).some((e) => e.seq >= downSeq), 'replay');
    const replayed = events(replay);
    assert.ok(replayed.some((e) => e.t === '#commit'));
    assert.deepEqual(
      replayed.filter((e) => e.did === victim).map((e) => [e.t, e.seq]),
      [['#account', downSeq]],
      'only the takedown notice of the account in replay',
    );

    assert.deepEqual(await get(`${base}/xrpc/com.atproto.sync.getRepoStatus?did=${victim}`), {
      status: 200,
      body: { did: victim, active: false, status: 'takendown' },
    });
    const latest = await get(`${base}/xrpc/com.atproto.sync.getLatestCommit?did=${victim}`);
    assert.deepEqual([latest.status, latest.body.error], [403, 'RepoTakendown']);
    const listRepos = async () =>
      ((await get(`${base}/xrpc/com.atproto.sync.listRepos`)).body.repos as Json[]).map((r) => r.did);
    assert.ok(!(await listRepos()).includes(victim));
    assert.equal((await listRepos()).length, net.accounts.length - 1);

    // New upstream commits of the account are not relayed; the bystander's are.
    const dropped = victimHost.writeRecord(victim);
    const passed = victimHost.writeRecord(bystander);
    await caughtUp(hostIndex);
    await waitFor(
      () => events(live).some((e) => e.t === '#commit' && e.body.rev === passed.rev && e.did === bystander),
      'the bystander commit',
    );
    const liveCommitsOf = (did: string) => events(live).filter((e) => e.did === did && e.t === '#commit');
    assert.deepEqual(liveCommitsOf(victim), []);
    assert.ok(dropped.rev);

    // Reversal: #account active, listed again, replay shows its history again.
    const up = await post('/admin/repos/reverse-takedown', { did: victim });
    assert.equal(up.status, 200);
    const upSeq = up.body.seq as number;
    await waitFor(() => events(live).some((e) => e.seq === upSeq), 'the reversal #account');
    const restored = events(live).find((e) => e.seq === upSeq)!;
    assert.deepEqual(
      { t: restored.t, did: restored.body.did, active: restored.body.active },
      { t: '#account', did: victim, active: true },
    );
    assert.deepEqual(await get(`${base}/xrpc/com.atproto.sync.getRepoStatus?did=${victim}`), {
      status: 200,
      body: {
        did: victim,
        active: true,
        rev: (await get(`${base}/xrpc/com.atproto.sync.getLatestCommit?did=${victim}`)).body.rev,
      },
    });
    assert.ok((await listRepos()).includes(victim));
    const replay2 = await consumer(0);
    await waitFor(() => events(replay2).some((e) => e.seq >= upSeq), 'second replay');
    assert.equal(
      events(replay2).filter((e) => e.did === victim && e.t === '#commit').length,
      2,
      'the two commits from before the takedown are served again',
    );

    // The account's next upstream commit comes through again (after a resync:
    // the relay missed the commit made while it was taken down).
    const next = victimHost.writeRecord(victim);
    await waitFor(
      () =>
        events(live).some(
          (e) =>
            e.did === victim &&
            ((e.t === '#commit' && e.body.rev === next.rev) || (e.t === '#sync' && e.body.rev === next.rev)),
        ),
      'the account relayed again',
    );
    const after = await get(`${base}/xrpc/com.atproto.sync.getLatestCommit?did=${victim}`);
    assert.deepEqual(after.body, { cid: cidToString(next.commit!), rev: next.rev });
  });

  it('probes and /_stats answer on both ports', async () => {
    for (const b of [base, metricsBase]) {
      const health = await get(`${b}/_health`);
      assert.equal(health.status, 200, `${b}/_health`);
      assert.equal(health.body.status, 'ok');
      assert.deepEqual(health.body.checks, { metadata_store: 'ok', event_log: 'ok' });
      assert.deepEqual(await get(`${b}/_readyz`), { status: 200, body: { status: 'ok' } });
      const stats = await get(`${b}/_stats`);
      assert.equal(stats.status, 200);
      const hosts = stats.body.hosts as { total: number; byStatus: Record<string, number> };
      assert.equal(hosts.total, net.hosts.length);
      assert.equal(hosts.byStatus.active, net.hosts.length);
      assert.ok(((stats.body.eventLog as Json).head as number) > 0);
    }
  });

  it('/metrics on the metrics port covers every category of the issue', async () => {
    const res = await fetch(`${metricsBase}/metrics`);
    assert.equal(res.status, 200);
    const text = await res.text();
    const has = (name: string) => text.includes(`# TYPE ${name} `);
    const categories: Record<string, string[]> = {
      'events received by type and host': ['relay_ingest_frames_by_type_total', 'relay_ingest_frames_total'],
      'events accepted by type and host': [
        'relay_validation_passed_total',
        'relay_validation_events_by_host_total',
      ],
      'events rejected by type, host and reason': [
        'relay_validation_dropped_total',
        'relay_validation_events_by_host_total',
        'relay_ingest_dropped_total',
      ],
      'validation latency': ['relay_validation_latency_seconds', 'relay_validation_verify_seconds'],
      'event log head seq, bytes, retention': [
        'relay_eventlog_head_seq',
        'relay_eventlog_bytes',
        'relay_eventlog_oldest_seq',
      ],
      'consumers, outbox depth, slow-consumer drops': [
        'relay_firehose_consumers',
        'relay_firehose_outbox_bytes',
        'relay_firehose_consumer_drops_total',
      ],
      'hosts by status': ['relay_ingest_hosts', 'relay_ingest_hosts_connected'],
      'identity cache size and hit rate': [
        'relay_identity_cache_entries',
        'relay_identity_cache_lookups_total',
      ],
      resyncs: ['relay_validation_resyncs_total'],
      'process memory and event-loop lag': ['process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds'],
    };
    for (const [what, names] of Object.entries(categories)) {
      for (const n of names) assert.ok(has(n), `${what}: ${n}`);
    }
    assert.match(text, /relay_ingest_hosts\{status="active"\} 2\b/);
    assert.match(text, /relay_validation_latency_seconds_count\{type="#commit"\} [1-9]/);
    assert.match(text, /relay_validation_verify_seconds_count\{type="#commit"\} [1-9]/);
    assert.match(text, /relay_validation_dropped_total\{type="#commit",reason="inactive-account"\} [1-9]/);
    assert.match(text, /relay_validation_resyncs_total\{result="ok"\} [1-9]/);
    const victimHost = net.hostOf(net.accounts[0].did).hostname;
    assert.match(
      text,
      new RegExp(`relay_validation_events_by_host_total\\{host="${victimHost}",result="dropped"\\} [1-9]`),
    );
  });
});
