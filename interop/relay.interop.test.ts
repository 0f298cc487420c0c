// The relay against the real thing: two reference PDSes and a PLC directory
// (Node 22 harness), our relay started in-process on loopback and asked to
// crawl both via requestCrawl, and Bluesky's @atproto/sync Firehose (Node 22,
// verification on) reading the relay's firehose. Each scenario compares, per
// DID and in order, every frame and every verified event on the relay with
// what the PDSes sequenced, so a dropped, duplicated, reordered or altered
// event fails it. Not part of `npm run test:interop` yet: it needs the relay's
// ingest, validation and API wired in src/relay.ts (see docs/interop.md).
// Run by hand: node --import tsx --test interop/relay.interop.test.ts
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../src/config/config.ts';
import { silentLogger } from '../src/log.ts';
import { Relay } from '../src/relay.ts';
import { WAIT_DEADLINE_MS, waitFor } from '../test/support/wait.ts';
import { assertRelayedPerDid } from './compare.ts';
import { type CommitResult, Consumer, Harness, type PdsEvent, ProcessGroup } from './procs.ts';

const ADMIN_PASSWORD = 'interop-admin';

// Handles are resolved at the PDS that serves them (/.well-known/atproto-did
// with the handle as Host), never through DNS.
function handleResolverFor(pdsUrls: string[]) {
  const ask = (pdsUrl: string, handle: string) =>
    new Promise<string | undefined>((resolve) => {
      const req = http.get(
        new URL('/.well-known/atproto-did', pdsUrl),
        { headers: { host: handle } },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            body += c;
          });
          res.on('end', () => resolve(res.statusCode === 200 ? body.trim() : undefined));
        },
      );
      req.on('error', () => resolve(undefined));
    });
  return {
    async resolve(handle: string) {
      for (const p of pdsUrls) {
        const did = await ask(p, handle);
        if (did?.startsWith('did:')) return did;
      }
      return undefined;
    },
  };
}

describe('relay interop: reference PDSes → relay → @atproto/sync consumer', { timeout: 600_000 }, () => {
  const group = new ProcessGroup();
  let harness: Harness;
  let dataDir: string;
  let relay: Relay | undefined;
  let relayPort = 0;
  let consumer: Consumer;
  /** Per PDS, the last seq already accounted for by an earlier scenario. */
  const marks = [0, 0];
  /** Everything the PDSes emitted since the relay started crawling (deleted accounts' history kept). */
  const emitted: PdsEvent[] = [];

  const relayUrl = () => `http://127.0.0.1:${relayPort}`;

  async function startRelay(port: number): Promise<Relay> {
    const config = loadConfig({
      env: {
        RELAY_PORT: String(port),
        RELAY_METRICS_PORT: '0',
        RELAY_BIND: '127.0.0.1',
        RELAY_DATA_DIR: dataDir,
        RELAY_PLC_URL: harness.info.plc,
        RELAY_UPSTREAM: 'none',
        RELAY_ALLOW_INSECURE_HOSTS: 'true',
        RELAY_ADMIN_PASSWORD: ADMIN_PASSWORD,
        RELAY_EVENTLOG_FSYNC: 'false',
        RELAY_VALIDATION_WORKERS: '1',
      },
    });
    const r = new Relay(config, silentLogger, { handleResolver: handleResolverFor(harness.info.pds) });
    await r.start();
    return r;
  }

  async function relayJson(path: string, init?: RequestInit): Promise<{ status: number; body: unknown }> {
    const res = await fetch(`${relayUrl()}${path}`, init);
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }

  async function pdsJson(pds: number, path: string): Promise<{ status: number; body: unknown }> {
    const res = await fetch(`${harness.info.pds[pds]}${path}`);
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }

  /** Appends what each PDS sequenced since the last call to `emitted`. */
  async function collect(): Promise<PdsEvent[]> {
    const fresh: PdsEvent[] = [];
    for (let i = 0; i < marks.length; i++) {
      const evts = await harness.events(i, marks[i]);
      if (evts.length > 0) marks[i] = evts[evts.length - 1].seq;
      fresh.push(...evts);
    }
    emitted.push(...fresh);
    return fresh;
  }

  /**
   * Waits until, for every DID in `fresh`, the relay stream shows as many
   * frames as the PDSes emitted for it so far (all of `emitted`).
   */
  async function relayCaughtUp(fresh: PdsEvent[], timeoutMs = WAIT_DEADLINE_MS) {
    const dids = new Set(fresh.map((e) => e.did));
    const want = new Map<string, number>();
    for (const e of emitted) if (dids.has(e.did)) want.set(e.did, (want.get(e.did) ?? 0) + 1);
    await consumer.waitFor(
      (c) => {
        const got = new Map<string, number>();
        for (const f of c.frames()) got.set(f.did ?? '?', (got.get(f.did ?? '?') ?? 0) + 1);
        return [...want].every(([did, n]) => (got.get(did) ?? 0) >= n);
      },
      timeoutMs,
      'the relay to catch up with the PDSes',
    );
    await consumer.settle();
  }

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'atrelay-interop-relay-'));
    harness = await Harness.start(group, 2);
    relay = await startRelay(0);
    relayPort = relay.port;
  });

  after(async () => {
    await relay?.stop();
    await group.killAll();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('crawls both PDSes after requestCrawl', async () => {
    for (const pds of [0, 1]) {
      const res = await harness.call<{ status: number; body: string }>('requestCrawl', {
        pds,
        relay: relayUrl(),
      });
      assert.equal(res.status, 200, res.body);
    }
    await waitFor(
      () => (relay?.hosts?.list() ?? []).filter((h) => h.connected).length === 2,
      'both hosts connected',
    );
    const hosts = (await relayJson('/xrpc/com.atproto.sync.listHosts')).body as {
      hosts: { hostname: string }[];
    };
    assert.deepEqual(hosts.hosts.map((h) => h.hostname).sort(), [...harness.info.hosts].sort());
    consumer = Consumer.start(group, {
      service: relayUrl().replace(/^http/, 'ws'),
      plc: harness.info.plc,
      pds: harness.info.pds,
      cursor: 0,
    });
  });

  const accounts: Record<string, string> = {};

  it('accounts, posts, likes, follows, updates, deletes and a 200-write commit', async () => {
    for (const [name, pds] of [
      ['alice', 0],
      ['bob', 0],
      ['carol', 1],
      ['dave', 1],
    ] as const) {
      accounts[name] = (
        await harness.call<{ did: string }>('createAccount', { pds, handle: `${name}.test` })
      ).did;
    }
    const { alice, bob, carol, dave } = accounts;
    const p1 = await harness.call<CommitResult>('post', { did: alice, text: 'one' });
    const p2 = await harness.call<CommitResult>('post', { did: carol, text: 'two' });
    await harness.call('like', { did: bob, uri: p2.uri, cid: p2.cid });
    await harness.call('like', { did: dave, uri: p1.uri, cid: p1.cid });
    await harness.call('follow', { did: carol, subject: alice });
    await harness.call('follow', { did: bob, subject: dave });
    await harness.call('putRecord', {
      did: alice,
      collection: 'app.bsky.feed.post',
      rkey: p1.uri!.split('/').pop(),
      record: { $type: 'app.bsky.feed.post', text: 'one, edited', createdAt: new Date().toISOString() },
    });
    await harness.call('deleteRecord', {
      did: carol,
      collection: 'app.bsky.feed.post',
      rkey: p2.uri!.split('/').pop(),
    });
    const batch = await harness.call<CommitResult>('batch', { did: dave, count: 200 });
    assert.equal(batch.ops.length, 200);
    const fresh = await collect();
    await relayCaughtUp(fresh);
    assertRelayedPerDid(consumer.lines, emitted);
  });

  it('handle change (#identity), deactivation and reactivation, deletion (#account)', async () => {
    const { alice, bob } = accounts;
    await harness.call('updateHandle', { did: alice, handle: 'alice-renamed.test' });
    await harness.call('deactivate', { did: bob });
    await harness.call('activate', { did: bob });
    await harness.call('post', { did: bob, text: 'back' });
    const erin = (await harness.call<{ did: string }>('createAccount', { pds: 0, handle: 'erin.test' })).did;
    await harness.call('post', { did: erin, text: 'soon gone' });
    // The PDS forgets a deleted account's history: let the relay read it first.
    await relayCaughtUp(await collect());
    await harness.call('deleteAccount', { did: erin });
    await relayCaughtUp(await collect());
    assertRelayedPerDid(consumer.lines, emitted);
    const identity = consumer.events().filter((e) => e.event === 'identity' && e.did === alice);
    assert.equal(identity[identity.length - 1]?.handle, 'alice-renamed.test', 'verified new handle');
    const status = await relayJson(`/xrpc/com.atproto.sync.getRepoStatus?did=${erin}`);
    assert.ok(
      status.status === 404 || (status.body as { status?: string }).status === 'deleted',
      `getRepoStatus of a deleted account: ${JSON.stringify(status)}`,
    );
  });

  it('follows an account that migrates from one PDS to the other', async () => {
    const { alice } = accounts;
    const res = await harness.call<{ head: { cid: string; rev: string } }>('migrate', { did: alice, to: 1 });
    const post = await harness.call<CommitResult>('post', { did: alice, text: 'from my new home' });
    await collect();
    await consumer.waitFor(
      (c) => c.events().some((e) => e.event === 'create' && e.commit === post.commit),
      WAIT_DEADLINE_MS,
      'the post made on the new PDS',
    );
    await consumer.settle();
    // Everything else is still exact; the migrating DID is checked below.
    const others = new Set(emitted.map((e) => e.did).filter((d) => d !== alice));
    assertRelayedPerDid(consumer.lines, emitted, { onlyDids: others });
    const mine = consumer.frames().filter((f) => f.did === alice);
    const lastAccount = mine.filter((f) => f.kind === 'account').pop();
    assert.equal(lastAccount?.active, true, 'the old PDS deactivating the migrated account is not relayed');
    const seen = new Set<string>();
    for (const f of mine.filter((x) => x.kind === 'commit')) {
      assert.ok(!seen.has(f.commit!), `commit ${f.commit} relayed once`);
      seen.add(f.commit!);
    }
    const latest = await relayJson(`/xrpc/com.atproto.sync.getLatestCommit?did=${alice}`);
    assert.deepEqual(latest.body, { cid: post.commit, rev: post.rev });
    assert.notDeepEqual(res.head, latest.body);
    const status = (await relayJson(`/xrpc/com.atproto.sync.getRepoStatus?did=${alice}`)).body as {
      active: boolean;
    };
    assert.equal(status.active, true);
  });

  it('survives a restart mid-stream: nothing lost, nothing repeated, the consumer resumes from its cursor', async () => {
    const { bob, carol } = accounts;
    const connectsBefore = consumer.lines.filter((l) => l.type === 'connect').length;
    let written = 0;
    let stop = false;
    const writes = (async () => {
      while (!stop || written < 30) {
        await harness.call('post', { did: written % 2 ? bob : carol, text: `during restart ${written}` });
        written++;
      }
    })();
    // Stop the relay once writes are flowing, keep it down while more land, start it again.
    await waitFor(() => written >= 5, 'writes before the stop');
    await relay?.stop();
    relay = undefined;
    const atStop = written;
    await waitFor(() => written >= atStop + 5, 'writes while the relay is down');
    relay = await startRelay(relayPort);
    stop = true;
    await writes;
    assert.ok(written >= atStop + 5);
    const fresh = await collect();
    await relayCaughtUp(fresh);
    // The library lost the connection and reconnected from the last seq it had.
    const connects = consumer.lines.filter((l) => l.type === 'connect');
    assert.ok(connects.length > connectsBefore, 'the consumer reconnected');
    for (const c of connects.slice(connectsBefore)) {
      const before = consumer.lines.slice(0, consumer.lines.indexOf(c)).filter((l) => l.type === 'frame');
      assert.equal(c.cursor, before[before.length - 1]?.seq, 'resumed from its cursor');
    }
    assertRelayedPerDid(consumer.lines, emitted, {
      allowErrors: (l) => l.name === 'FirehoseSubscriptionError',
      onlyDids: new Set(emitted.map((e) => e.did).filter((d) => d !== accounts.alice)),
    });
  });

  it('admin takedown: #account takendown, the account stops, getRepoStatus agrees', async () => {
    const { dave } = accounts;
    const auth = { authorization: `Bearer ${ADMIN_PASSWORD}`, 'content-type': 'application/json' };
    const res = await relayJson('/admin/repos/takedown', {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ did: dave, reason: 'interop' }),
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    await consumer.waitFor(
      (c) => c.frames().some((f) => f.kind === 'account' && f.did === dave && f.status === 'takendown'),
      WAIT_DEADLINE_MS,
      '#account takendown',
    );
    const after = await harness.call<CommitResult>('post', { did: dave, text: 'after takedown' });
    await collect();
    const marker = await harness.call<CommitResult>('post', { did: accounts.carol, text: 'marker' });
    await collect();
    await consumer.waitFor(
      (c) => c.frames().some((f) => f.commit === marker.commit),
      WAIT_DEADLINE_MS,
      'marker',
    );
    await consumer.settle();
    assert.ok(!consumer.frames().some((f) => f.commit === after.commit), 'a taken-down account’s commit');
    const takedowns = consumer
      .events()
      .filter((e) => e.event === 'account' && e.did === dave && e.status === 'takendown');
    assert.equal(takedowns.length, 1, 'one verified #account takendown');
    assert.equal(takedowns[0].active, false);
    const status = (await relayJson(`/xrpc/com.atproto.sync.getRepoStatus?did=${dave}`)).body as {
      active: boolean;
      status?: string;
    };
    assert.equal(status.active, false);
    assert.equal(status.status, 'takendown');
    const undo = await relayJson('/admin/repos/reverse-takedown', {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ did: dave }),
    });
    assert.equal(undo.status, 200, JSON.stringify(undo.body));
  });

  it('listRepos, getRepoStatus and getLatestCommit agree with each PDS', async () => {
    await collect();
    const relayRepos = new Map<string, { head: string; rev: string; active: boolean }>();
    let cursor: string | undefined;
    do {
      const page = (
        await relayJson(`/xrpc/com.atproto.sync.listRepos?limit=1000${cursor ? `&cursor=${cursor}` : ''}`)
      ).body as { repos: { did: string; head: string; rev: string; active: boolean }[]; cursor?: string };
      for (const r of page.repos) relayRepos.set(r.did, r);
      cursor = page.cursor;
    } while (cursor);
    for (const pds of [0, 1]) {
      const state = await harness.call<{
        repos: { did: string; head: string; rev: string; active: boolean }[];
      }>('syncState', { pds });
      for (const repo of state.repos) {
        if (!repo.active) continue; // e.g. the migrated account's old copy
        if (repo.did === accounts.dave) continue; // taken down on the relay above
        const mine = relayRepos.get(repo.did);
        assert.ok(mine, `listRepos on the relay has ${repo.did}`);
        assert.equal(mine.head, repo.head, `head of ${repo.did}`);
        assert.equal(mine.rev, repo.rev, `rev of ${repo.did}`);
        const [a, b] = await Promise.all([
          relayJson(`/xrpc/com.atproto.sync.getLatestCommit?did=${repo.did}`),
          pdsJson(pds, `/xrpc/com.atproto.sync.getLatestCommit?did=${repo.did}`),
        ]);
        assert.deepEqual(a.body, b.body, `getLatestCommit of ${repo.did}`);
        const [s1, s2] = await Promise.all([
          relayJson(`/xrpc/com.atproto.sync.getRepoStatus?did=${repo.did}`),
          pdsJson(pds, `/xrpc/com.atproto.sync.getRepoStatus?did=${repo.did}`),
        ]);
        const pick = (x: unknown) => {
          const o = x as { did: string; active: boolean; status?: string; rev?: string };
          return { did: o.did, active: o.active, status: o.status, rev: o.rev };
        };
        assert.deepEqual(pick(s1.body), pick(s2.body), `getRepoStatus of ${repo.did}`);
      }
    }
  });
});
