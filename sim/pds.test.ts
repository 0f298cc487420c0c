import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { readCar } from '../src/protocol/car.ts';
import { cidEquals } from '../src/protocol/cid.ts';
import { decodeCommit } from '../src/protocol/commit.ts';
import { type StreamReader, subscribe } from './consumer.ts';
import { SimPds } from './pds.ts';
import { SimPlc } from './plc.ts';
import { checkCommitBody, checkSyncBody } from './verify.ts';

async function xrpc(host: SimPds, method: string, params: Record<string, string> = {}) {
  const qs = new URLSearchParams(params).toString();
  const res = await fetch(`${host.url}/xrpc/${method}${qs ? `?${qs}` : ''}`);
  const type = res.headers.get('content-type') ?? '';
  const body = type.includes('json') ? await res.json() : new Uint8Array(await res.arrayBuffer());
  return { status: res.status, type, body: body as Record<string, unknown> & Uint8Array };
}

describe('SimPds', () => {
  let plc: SimPlc;
  let host: SimPds;
  let reader: StreamReader;

  before(async () => {
    plc = await SimPlc.start('pds-test');
    host = await SimPds.start({ plc, name: 'alpha', seed: 1 });
    reader = await subscribe(host.wsUrl, 0);
  });
  after(async () => {
    await reader.close();
    await host.stop();
    await plc.stop();
  });

  it('creates an account: PLC document, then #identity, #account, #commit', async () => {
    const a = host.createAccount({ handle: 'alice.alpha.test' });
    await reader.waitFor(3);
    const [id, acct, commit] = reader.frames.map((f) => f.frame!);
    assert.deepEqual(id.header, { op: 1, t: '#identity' });
    assert.equal(id.body.handle, 'alice.alpha.test');
    assert.deepEqual(
      [acct.header, acct.body.active, acct.body.status],
      [{ op: 1, t: '#account' }, true, undefined],
    );
    assert.deepEqual(commit.header, { op: 1, t: '#commit' });
    assert.deepEqual([commit.body.seq, commit.body.since, commit.body.ops], [3, null, []]);
    assert.equal(commit.body.prevData, undefined);
    assert.deepEqual(checkCommitBody(commit.body, plc).problems, []);
    assert.equal(plc.document(a.did)?.service[0].serviceEndpoint, host.url);
    assert.equal(plc.resolveHandle('alice.alpha.test'), a.did);
  });

  it('emits chained, verifiable commits for creates, updates and deletes', async () => {
    const did = host.createAccount().did;
    await reader.waitFor(host.seq);
    const writes = [
      [
        {
          action: 'create' as const,
          collection: 'app.bsky.feed.post',
          rkey: '3kaaaaaaaaa22',
          record: { $type: 'app.bsky.feed.post', text: 'a', createdAt: '2026-01-01T00:00:00Z' },
        },
      ],
      [
        {
          action: 'create' as const,
          collection: 'app.bsky.actor.profile',
          rkey: 'self',
          record: { $type: 'app.bsky.actor.profile', displayName: 'x' },
        },
      ],
      [
        {
          action: 'update' as const,
          collection: 'app.bsky.actor.profile',
          rkey: 'self',
          record: { $type: 'app.bsky.actor.profile', displayName: 'y' },
        },
      ],
      [{ action: 'delete' as const, collection: 'app.bsky.feed.post', rkey: '3kaaaaaaaaa22' }],
    ];
    const start = reader.count;
    for (const w of writes) host.writeRecords(did, w);
    for (let i = 0; i < 30; i++) host.writeRecord(did);
    await reader.waitFor(start + 34);
    const commits = reader.frames
      .slice(start)
      .map((f) => f.frame!)
      .filter((f) => f.header.op === 1 && f.header.t === '#commit');
    assert.equal(commits.length, 34);
    let prev: { rev: string; data: unknown } | null = null;
    for (const c of commits) {
      const check = checkCommitBody(c.body, plc);
      assert.deepEqual(check.problems, []);
      if (prev) {
        assert.equal(c.body.since, prev.rev);
        assert.ok(cidEquals(c.body.prevData as never, prev.data as never));
      }
      prev = { rev: check.rev, data: check.data };
    }
    const ops = commits.slice(0, 4).map((c) => (c.body.ops as { action: string; prev?: unknown }[])[0]);
    assert.deepEqual(
      ops.map((o) => [o.action, o.prev !== undefined]),
      [
        ['create', false],
        ['create', false],
        ['update', true],
        ['delete', true],
      ],
    );
  });

  it('serves describeServer, getRepo, getLatestCommit, getRepoStatus, listRepos', async () => {
    const d = await xrpc(host, 'com.atproto.server.describeServer');
    assert.equal(d.status, 200);
    assert.equal(d.body.did, host.serviceDid);
    assert.deepEqual(d.body.availableUserDomains, ['.alpha.test']);

    const did = [...host.accounts.keys()][1];
    const head = host.account(did).repo.head()!;
    const repo = await xrpc(host, 'com.atproto.sync.getRepo', { did });
    assert.equal(repo.type, 'application/vnd.ipld.car');
    const car = readCar(repo.body, { maxBytes: 10_000_000 });
    assert.ok(cidEquals(car.roots[0], head.commitCid));
    assert.equal(decodeCommit(car.blocks.get(head.commitCid)!).rev, head.rev);

    const latest = await xrpc(host, 'com.atproto.sync.getLatestCommit', { did });
    assert.deepEqual(latest.body, { cid: head.commitCid.$link, rev: head.rev });
    const status = await xrpc(host, 'com.atproto.sync.getRepoStatus', { did });
    assert.deepEqual(status.body, { did, active: true, rev: head.rev });

    for (let i = 0; i < 3; i++) host.createAccount();
    const seen: string[] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = await xrpc(
        host,
        'com.atproto.sync.listRepos',
        cursor ? { limit: '2', cursor } : { limit: '2' },
      );
      const repos = page.body.repos as { did: string; head: string; rev: string; active: boolean }[];
      seen.push(...repos.map((r) => r.did));
      assert.ok(repos.every((r) => r.active && r.head.startsWith('bafy')));
      cursor = page.body.cursor as string | undefined;
      if (!cursor) break;
    }
    assert.deepEqual(seen, [...host.accounts.keys()].sort());
    const bad = await xrpc(host, 'com.atproto.sync.listRepos', { limit: '0' });
    assert.equal(bad.status, 400);
  });

  it('answers with the lexicon errors for deactivated, taken-down, deleted and unknown repos', async () => {
    const [a, b, c, d] = [1, 2, 3, 4].map(() => host.createAccount().did);
    host.deactivate(a);
    host.takedown(b);
    host.deleteAccount(c);
    host.suspend(d);
    const cases: [string, string][] = [
      [a, 'RepoDeactivated'],
      [b, 'RepoTakendown'],
      [c, 'RepoNotFound'],
      [d, 'RepoSuspended'],
      ['did:plc:aaaaaaaaaaaaaaaaaaaaaaaa', 'RepoNotFound'],
    ];
    for (const [did, error] of cases) {
      for (const m of ['com.atproto.sync.getRepo', 'com.atproto.sync.getLatestCommit']) {
        const r = await xrpc(host, m, { did });
        assert.equal(r.status, 400);
        assert.equal(r.body.error, error, `${m} ${did}`);
      }
    }
    const st = await xrpc(host, 'com.atproto.sync.getRepoStatus', { did: a });
    assert.deepEqual(st.body, { did: a, active: false, status: 'deactivated' });
    const unknown = await xrpc(host, 'com.atproto.sync.notAMethod');
    assert.equal(unknown.status, 501);
  });

  it('emits #account for status changes and #identity, #account, #sync on activation', async () => {
    const did = host.createAccount().did;
    await reader.waitFor(host.seq);
    const start = reader.count;
    host.deactivate(did);
    const events = host.activate(did);
    host.changeHandle(did, 'renamed.alpha.test');
    await reader.waitFor(start + 5);
    const frames = reader.frames.slice(start).map((f) => f.frame!);
    assert.deepEqual(
      frames.map((f) => (f.header.op === 1 ? f.header.t : 'error')),
      ['#account', '#identity', '#account', '#sync', '#identity'],
    );
    assert.deepEqual([frames[0].body.active, frames[0].body.status], [false, 'deactivated']);
    assert.equal(frames[2].body.active, true);
    assert.deepEqual(checkSyncBody(frames[3].body, plc).problems, []);
    assert.equal(frames[3].body.rev, host.account(did).repo.head()!.rev);
    assert.equal(frames[4].body.handle, 'renamed.alpha.test');
    assert.equal(events[2].seq, frames[3].body.seq);
    assert.equal(plc.resolveHandle('renamed.alpha.test'), did);
  });

  it('replays from a cursor over the host WebSocket with no gap or duplicate', async () => {
    const head = host.seq;
    const r = await subscribe(host.wsUrl, head - 5);
    const did = host.createAccount().did;
    host.writeRecord(did);
    await r.waitFor(9);
    assert.deepEqual(
      r.seqs(),
      Array.from({ length: 9 }, (_, i) => head - 4 + i),
    );
    await r.close();
    const future = await subscribe(host.wsUrl, host.seq + 10);
    await future.waitClosed();
    assert.equal(future.frames[0].frame?.body.error, 'FutureCursor');
    const bad = await subscribe(`${host.wsUrl}?cursor=abc`);
    await bad.waitClosed();
    assert.equal(bad.frames[0].frame?.body.error, 'InvalidRequest');
  });

  it('goes offline (connections dropped, state kept) and back online on the same port', async () => {
    const r = await subscribe(host.wsUrl, host.seq);
    const url = host.url;
    const seq = host.seq;
    await host.goOffline();
    await r.waitClosed();
    assert.equal(r.closeCode, 1006);
    await assert.rejects(fetch(`${url}/xrpc/_health`));
    await host.goOnline();
    assert.equal(host.url, url);
    const again = await subscribe(host.wsUrl, seq - 1);
    await again.waitFor(1);
    assert.deepEqual(again.seqs(), [seq]);
    await again.close();
  });

  it('rotates the signing key: #identity, then commits verify against the new key only', async () => {
    const did = host.createAccount().did;
    const oldKey = plc.get(did)!.signingKey;
    const r = await subscribe(host.wsUrl, host.seq);
    const ev = host.rotateSigningKey(did);
    assert.equal(ev.t, '#identity');
    assert.notEqual(plc.get(did)!.signingKey, oldKey);
    host.writeRecord(did);
    await r.waitFor(2);
    assert.deepEqual(checkCommitBody(r.frames[1].frame!.body, plc).problems, []);
    await r.close();
  });
});
