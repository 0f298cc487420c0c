import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  appendCommits,
  FirehoseClient,
  type Harness,
  seedAccounts,
  startHarness,
} from '../../test/support/api-harness.ts';
import type { Account } from '../store/metadata-store.ts';

type Json = Record<string, unknown>;

describe('takedown through the admin API', () => {
  let h: Harness;
  let victim: Account;
  let bystander: Account;
  const clients: FirehoseClient[] = [];
  const subscribe = (cursor?: number): FirehoseClient => {
    const q = cursor === undefined ? '' : `?cursor=${cursor}`;
    const c = new FirehoseClient(`ws://127.0.0.1:${h.port}/xrpc/com.atproto.sync.subscribeRepos${q}`);
    clients.push(c);
    return c;
  };
  const repos = async (): Promise<string[]> => {
    const body = (await (await h.get('/xrpc/com.atproto.sync.listRepos')).json()) as {
      repos: { did: string }[];
    };
    return body.repos.map((r) => r.did);
  };
  const status = async (did: string): Promise<Json> =>
    (await (await h.get(`/xrpc/com.atproto.sync.getRepoStatus?did=${did}`)).json()) as Json;

  before(async () => {
    h = await startHarness();
    const host = (await h.store.createHost({ hostname: 'pds.example.com' })).value;
    const [a, b] = await seedAccounts(h.store, host.id, 2, { prefix: 'td' });
    victim = (await h.store.getAccountByDid(a)) as Account;
    bystander = (await h.store.getAccountByDid(b)) as Account;
    // Interleaved history: victim, bystander, victim, bystander, …
    for (let i = 0; i < 3; i++) {
      await appendCommits(h.log, victim.uid, victim.did, 1);
      await appendCommits(h.log, bystander.uid, bystander.did, 1);
    }
  });
  after(async () => {
    for (const c of clients) c.close();
    await h.close();
  });

  it('hides earlier events from replay, emits #account, and updates getRepoStatus / listRepos', async () => {
    assert.deepEqual(await repos(), [victim.did, bystander.did]);
    const live = subscribe();
    await live.opened;

    const res = await h.admin('POST', '/admin/repos/takedown', { did: victim.did, reason: 'abuse' });
    assert.equal(res.status, 200);
    const out = (await res.json()) as Json;
    assert.equal(out.known, true);
    assert.equal(out.seq, 7);

    // The live consumer gets the #account event.
    await live.waitFor((f) => f.some((x) => x.t === '#account'));
    const acct = live.frames.find((x) => x.t === '#account') as Json;
    assert.equal(acct.did, victim.did);
    assert.equal(acct.active, false);
    assert.equal(acct.status, 'takendown');
    assert.equal(acct.seq, 7);
    assert.equal(typeof acct.time, 'string');

    // Replay from the start: only the bystander's commits, then the #account.
    const replay = subscribe(0);
    await replay.waitFor((f) => f.some((x) => x.t === '#account'));
    assert.deepEqual(
      replay.frames.map((x) => [x.t, x.t === '#commit' ? x.repo : x.did, x.seq]),
      [
        ['#commit', bystander.did, 2],
        ['#commit', bystander.did, 4],
        ['#commit', bystander.did, 6],
        ['#account', victim.did, 7],
      ],
    );

    assert.deepEqual(await status(victim.did), { did: victim.did, active: false, status: 'takendown' });
    assert.deepEqual(await repos(), [bystander.did]);
    const latest = await h.get(`/xrpc/com.atproto.sync.getLatestCommit?did=${victim.did}`);
    assert.equal(latest.status, 403);
    assert.equal(((await latest.json()) as Json).error, 'RepoTakendown');
    const state = (await (await h.admin('GET', `/admin/repos/get?did=${victim.did}`)).json()) as Json;
    assert.equal(state.takenDown, true);
    assert.equal(state.localStatus, 'takendown');
  });

  it('reversal emits #account active and restores status, listing and replay', async () => {
    const live = subscribe();
    await live.opened;
    const res = await h.admin('POST', '/admin/repos/reverse-takedown', { did: victim.did });
    assert.equal(res.status, 200);
    const out = (await res.json()) as Json;
    assert.equal(out.seq, 8);
    await live.waitFor((f) => f.some((x) => x.t === '#account'));
    const acct = live.frames.find((x) => x.t === '#account') as Json;
    assert.equal(acct.active, true);
    assert.equal(acct.status, undefined);
    assert.equal(acct.seq, 8);

    assert.equal((await status(victim.did)).active, true);
    assert.deepEqual(await repos(), [victim.did, bystander.did]);
    const replay = subscribe(0);
    await replay.waitFor((f) => f.length === 8);
    assert.deepEqual(
      replay.frames.map((x) => x.seq),
      [1, 2, 3, 4, 5, 6, 7, 8],
    );
  });

  it('reversal reports the upstream status when the account is not active upstream', async () => {
    await h.store.setAccountUpstreamStatus(bystander.uid, 'deactivated');
    await (await h.admin('POST', '/admin/repos/takedown', { did: bystander.did })).arrayBuffer();
    const live = subscribe();
    await live.opened;
    await (await h.admin('POST', '/admin/repos/reverse-takedown', { did: bystander.did })).arrayBuffer();
    await live.waitFor((f) => f.some((x) => x.t === '#account'));
    const acct = live.frames.find((x) => x.t === '#account') as Json;
    assert.equal(acct.active, false);
    assert.equal(acct.status, 'deactivated');
    assert.deepEqual(await status(bystander.did), {
      did: bystander.did,
      active: false,
      status: 'deactivated',
    });
  });
});
