// The collection index wired into a real relay (ingest → validation → event
// log, the validator's observer feeding the index) against a small simulated
// network on loopback: creates in two collections list the DIDs under
// listReposByCollection; deleting an account's last record of a collection
// removes it from that collection, decided from the commit's proof (no pending
// check), while deleting one of several keeps it; an admin takedown hides the
// account and its reversal shows it again; a resync after a chain break
// replaces the account's collections with those of its fetched repo; so does
// an upstream #sync after the PDS changed the repo unannounced; the
// cleaner's repo fetch reads collections from a PDS (null for an unknown
// repo); the admin collection list needs admin authentication.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SimNetwork } from '../../sim/network.ts';
import type { RepoWrite } from '../../sim/repo.ts';
import { crawlAll, startTestRelay, TEST_ADMIN_PASSWORD } from '../../test/support/relay-harness.ts';
import { tempDir } from '../../test/support/temp.ts';
import { waitFor } from '../../test/support/wait.ts';
import { createSafeFetcher } from '../protocol/identity/safe-fetch.ts';
import type { Relay } from '../relay.ts';
import { RepoFetcher } from '../validate/repo-fetch.ts';
import { repoCollectionsFetcher } from './relay-upkeep.ts';

type Json = Record<string, unknown>;
const ADMIN = { authorization: `Bearer ${TEST_ADMIN_PASSWORD}` };
const POST = 'app.bsky.feed.post';
const LIKE = 'app.bsky.feed.like';
const CREATED_AT = '2026-11-22T00:00:00.000Z';

function create(collection: string, rkey: string): RepoWrite {
  return {
    action: 'create',
    collection,
    rkey,
    record: { $type: collection, text: rkey, createdAt: CREATED_AT },
  };
}

function remove(collection: string, rkey: string): RepoWrite {
  return { action: 'delete', collection, rkey };
}

describe('collection index in the running relay', () => {
  let net: SimNetwork;
  let dataDir: string;
  let relay: Relay;
  let base: string;
  let dids: string[];

  const get = async (path: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`${base}${path}`, { headers });
    return { status: res.status, body: (await res.json()) as Json };
  };
  const post = async (path: string, body: Json) => {
    const res = await fetch(`${base}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...ADMIN },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Json };
  };
  const listed = async (collection: string): Promise<string[]> => {
    const r = await get(`/xrpc/com.atproto.sync.listReposByCollection?collection=${collection}`);
    assert.equal(r.status, 200);
    return (r.body.repos as Json[]).map((x) => x.did as string);
  };
  const write = (did: string, writes: RepoWrite[]) => net.hostOf(did).writeRecords(did, writes);
  /** The relay has finished every frame its hosts emitted, and the index every update. */
  const settled = async () => {
    for (const host of net.hosts) {
      await waitFor(
        () => (relay.hosts?.list() ?? []).some((s) => s.hostname === host.hostname && s.cursor >= host.seq),
        `relay caught up with ${host.hostname}`,
      );
    }
    await relay.validator?.whenIdle();
    await relay.collectionUpkeep?.drain();
  };
  const sorted = (xs: string[]) => [...xs].sort();

  before(async () => {
    dataDir = tempDir('atrelay-coll-wiring-');
    net = await SimNetwork.start({ hosts: 2, accountsPerHost: 2, seed: 21 });
    dids = net.accounts.map((a) => a.did);
    relay = await startTestRelay(net, dataDir, { RELAY_COLLECTIONS_CLEANER_INTERVAL_SECONDS: '0' });
    base = `http://127.0.0.1:${relay.port}`;
    await crawlAll(relay, net);
  });

  after(async () => {
    await relay?.stop();
    await net?.stop();
  });

  it('lists the accounts that created records in each collection', async () => {
    const [a, b, c] = dids;
    write(a, [create(POST, '3aaaaaaaaaa21'), create(POST, '3aaaaaaaaaa22')]);
    write(a, [create(LIKE, '3aaaaaaaaaa23')]);
    write(b, [create(POST, '3aaaaaaaaaa24')]);
    write(c, [create(LIKE, '3aaaaaaaaaa25'), create(LIKE, '3aaaaaaaaaa26')]);
    await settled();
    assert.deepEqual(await listed(POST), sorted([a, b]));
    assert.deepEqual(await listed(LIKE), sorted([a, c]));
    assert.deepEqual(await listed('app.bsky.graph.follow'), []);
  });

  it('deleting the last record of a collection removes the account from it, decided from the proof', async () => {
    const [a, b, c] = dids;
    write(a, [remove(LIKE, '3aaaaaaaaaa23')]); // a's only like
    write(c, [remove(LIKE, '3aaaaaaaaaa25')]); // one of c's two likes
    write(a, [remove(POST, '3aaaaaaaaaa21')]); // one of a's two posts
    await settled();
    assert.deepEqual(await listed(LIKE), [c]);
    assert.deepEqual(await listed(POST), sorted([a, b]));
    const admin = await get('/admin/collections', ADMIN);
    assert.equal(admin.status, 200);
    assert.equal(admin.body.pendingChecks, 0, 'no delete left undecided');
    assert.equal(relay.collectionUpkeep?.errors, 0);
    const decided = await relay.registry.getSingleMetricAsString('relay_collections_deletes_decided_total');
    assert.match(decided, /^relay_collections_deletes_decided_total 3$/m);
    const undecided = await relay.registry.getSingleMetricAsString(
      'relay_collections_deletes_undecided_total',
    );
    assert.match(undecided, /^relay_collections_deletes_undecided_total 0$/m);
  });

  it('an admin takedown hides the account and its reversal shows it again', async () => {
    const [a, b] = dids;
    const down = await post('/admin/repos/takedown', { did: a });
    assert.equal(down.status, 200);
    assert.deepEqual(await listed(POST), [b]);
    // commits of a taken-down account are dropped: nothing reaches the index
    write(a, [create('com.example.hidden', '3aaaaaaaaaa27')]);
    await settled();
    assert.deepEqual(await listed('com.example.hidden'), []);
    const up = await post('/admin/repos/reverse-takedown', { did: a });
    assert.equal(up.status, 200);
    assert.deepEqual(await listed(POST), sorted([a, b]));
  });

  it("a resync after a chain break replaces the account's collections with its repo's", async () => {
    const [, b] = dids;
    // writes the relay never sees, then a commit that no longer follows its head
    net
      .hostOf(b)
      .applyUnannounced(b, [create('com.example.quiet', '3aaaaaaaaaa28'), remove(POST, '3aaaaaaaaaa24')]);
    write(b, [create(LIKE, '3aaaaaaaaaa29')]);
    await settled();
    await waitFor(async () => (await listed('com.example.quiet')).includes(b), 'resync reached the index');
    assert.ok(!(await listed(POST)).includes(b), 'the unannounced delete took b out of the posts');
    const resyncs = await relay.registry.getSingleMetricAsString('relay_collections_resyncs_total');
    assert.match(resyncs, /^relay_collections_resyncs_total 1$/m);
  });

  it("an upstream #sync queues a recompute: the index follows the repo's new collections", async () => {
    const [, , c] = dids;
    // the PDS changes c's repo outside the commit chain (an import), then resets the relay with #sync
    net
      .hostOf(c)
      .applyUnannounced(c, [remove(LIKE, '3aaaaaaaaaa26'), create('com.example.synced', '3aaaaaaaaaa30')]);
    net.hostOf(c).emitSync(c);
    await settled();
    await waitFor(
      async () => (await listed('com.example.synced')).includes(c),
      'recompute reached the index',
    );
    assert.ok(!(await listed(LIKE)).includes(c), "the #sync emptied c's likes");
    const recomputes = await relay.registry.getSingleMetricAsString(
      'relay_collections_sync_recomputes_total',
    );
    assert.match(recomputes, /^relay_collections_sync_recomputes_total 1$/m);
    // the chain-break resync before covered its own #sync: one recompute, no second fetch
    const resyncs = await relay.registry.getSingleMetricAsString('relay_collections_resyncs_total');
    assert.match(resyncs, /^relay_collections_resyncs_total 2$/m);
    const admin = await get('/admin/collections', ADMIN);
    assert.equal(admin.body.pendingChecks, 0, 'the #sync marker is cleared');
    // the next commit chains from the new head and applies on top
    write(c, [create(LIKE, '3aaaaaaaaaa31')]);
    await settled();
    assert.ok((await listed(LIKE)).includes(c));
  });

  it("the cleaner's repo fetch reads an account's collections from its PDS", async () => {
    const [a] = dids;
    const fetcher = createSafeFetcher({ allowPrivate: true, allowInsecure: true });
    const repos = new RepoFetcher({ fetcher, maxBytes: 1024 * 1024 });
    try {
      const fetchCollections = repoCollectionsFetcher({
        repos,
        identity: {
          resolve: async () => ({
            pdsEndpoint: net.hostOf(a).url,
            signingKey: net.hostOf(a).accounts.get(a)?.signer.publicKey,
          }),
        },
      });
      // the PDS has the record written while a was taken down (the relay dropped that commit)
      assert.deepEqual(await fetchCollections(a), [POST, 'com.example.hidden']);
      assert.equal(await fetchCollections('did:plc:aaaaaaaaaaaaaaaaaaaaaaaa'), null);
    } finally {
      await repos.close();
      await fetcher.close();
    }
  });

  it('the admin collection list requires admin authentication', async () => {
    const anon = await get('/admin/collections');
    assert.equal(anon.status, 401);
    const wrong = await get('/admin/collections', { authorization: 'Bearer nope' });
    assert.equal(wrong.status, 401);
    const ok = await get('/admin/collections', ADMIN);
    assert.equal(ok.status, 200);
    const counts = new Map((ok.body.collections as Json[]).map((x) => [x.collection, x.count]));
    assert.equal(counts.get(POST), 1);
    assert.equal(counts.get('com.example.quiet'), 1);
    const backfill = await get('/admin/collections/backfill', ADMIN);
    assert.equal(backfill.status, 200);
    assert.equal(backfill.body.state, 'idle');
  });
});
