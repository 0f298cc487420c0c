import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../../../test/support/identity-servers.ts';
import { waitFor } from '../../../test/support/wait.ts';
import { HandleResolver, type ResolveTxtFn } from './handle-resolver.ts';
import { createSafeFetcher } from './safe-fetch.ts';

const ALICE = 'did:plc:aaaaaaaaaaaaaaaaaaaaaaaa';
const BOB = 'did:plc:bbbbbbbbbbbbbbbbbbbbbbbb';

function txtTable(table: Record<string, string[][]>): ResolveTxtFn & { queries: string[] } {
  const queries: string[] = [];
  const fn = async (name: string) => {
    queries.push(name);
    const r = table[name];
    if (!r) throw Object.assign(new Error(`queryTxt ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
    return r;
  };
  return Object.assign(fn, { queries });
}

describe('HandleResolver', () => {
  let server: TestServer;
  const wellKnown: Record<string, string> = {
    'http.test': `${BOB}\n`,
    'junk.test': 'hello world',
  };
  before(async () => {
    server = await startTestServer((req, res) => {
      const host = (req.headers.host ?? '').split(':')[0];
      const body = wellKnown[host];
      assert.equal(req.url, '/.well-known/atproto-did');
      if (body === undefined) {
        res.writeHead(404);
        res.end();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(body);
    });
  });
  after(() => server.close());

  function resolver(table: Record<string, string[][]>, extra: { allowReservedTlds?: boolean } = {}) {
    const resolveTxt = txtTable(table);
    const fetcher = createSafeFetcher({
      allowPrivate: true,
      allowInsecure: true,
      lookup: async () => [{ address: '127.0.0.1', family: 4 }],
    });
    const r = new HandleResolver({
      fetcher,
      resolveTxt,
      wellKnownUrl: (h) => `http://${h}:${server.port}/.well-known/atproto-did`,
      allowReservedTlds: true,
      ...extra,
    });
    return { r, resolveTxt };
  }

  it('resolves via DNS TXT first', async () => {
    const { r, resolveTxt } = resolver({ '_atproto.alice.test': [[`did=${ALICE}`]] });
    const before = server.requests.length;
    assert.equal(await r.resolve('Alice.TEST'), ALICE);
    assert.deepEqual(resolveTxt.queries, ['_atproto.alice.test']);
    assert.equal(server.requests.length, before, 'no HTTP needed');
  });

  it('joins TXT chunks and ignores unrelated records', async () => {
    const { r } = resolver({
      '_atproto.alice.test': [['v=spf1 -all'], ['did=did:plc:aaaaaaaaaaaa', 'aaaaaaaaaaaa']],
    });
    assert.equal(await r.resolveDns('alice.test'), ALICE);
  });

  it('refuses conflicting or invalid TXT records', async () => {
    const { r } = resolver({
      '_atproto.two.test': [[`did=${ALICE}`], [`did=${BOB}`]],
      '_atproto.bad.test': [['did=not a did']],
      '_atproto.same.test': [[`did=${ALICE}`], [`did=${ALICE}`]],
    });
    assert.equal(await r.resolveDns('two.test'), undefined);
    assert.equal(await r.resolveDns('bad.test'), undefined);
    assert.equal(await r.resolveDns('same.test'), ALICE);
  });

  it('falls back to the HTTPS well-known file', async () => {
    const { r } = resolver({});
    assert.equal(await r.resolve('http.test'), BOB);
    assert.equal(await r.resolve('junk.test'), undefined);
    assert.equal(await r.resolve('missing.test'), undefined);
  });

  it('returns undefined for invalid handles and reserved TLDs in production', async () => {
    const { r, resolveTxt } = resolver(
      { '_atproto.alice.test': [[`did=${ALICE}`]] },
      { allowReservedTlds: false },
    );
    assert.equal(await r.resolve('alice.test'), undefined);
    assert.equal(await r.resolve('not a handle'), undefined);
    assert.equal(await r.resolve('localhost'), undefined);
    assert.deepEqual(resolveTxt.queries, []);
  });

  it('times out a DNS query that never answers', async () => {
    const r = new HandleResolver({
      fetcher: createSafeFetcher({ lookup: async () => [{ address: '10.0.0.1', family: 4 }] }),
      resolveTxt: () => new Promise(() => {}),
      timeoutMs: 20,
    });
    // DNS times out, then HTTPS is refused by the SSRF policy: no DID, no exception
    assert.equal(await r.resolve('alice.example.com'), undefined);
  });

  it('verifies handles in both directions', async () => {
    const { r } = resolver({ '_atproto.alice.test': [[`did=${ALICE}`]] });
    const identity = { did: ALICE, handle: 'alice.test' };
    assert.equal(await r.verifyHandle('alice.test', ALICE, identity), true);
    assert.equal(await r.verifyHandle('ALICE.test', ALICE, identity), true);
    // the document does not claim the handle
    assert.equal(await r.verifyHandle('alice.test', ALICE, { did: ALICE, handle: 'other.test' }), false);
    assert.equal(await r.verifyHandle('alice.test', ALICE, { did: ALICE }), false);
    // the handle points elsewhere
    assert.equal(await r.verifyHandle('http.test', ALICE, { did: ALICE, handle: 'http.test' }), false);
    // the identity is for another DID
    assert.equal(await r.verifyHandle('alice.test', ALICE, { did: BOB, handle: 'alice.test' }), false);
  });
});

describe('HandleResolver concurrency', () => {
  it('runs at most maxConcurrent resolutions at once, the rest in order; a full queue answers undefined', async () => {
    let running = 0;
    let most = 0;
    const started: string[] = [];
    const release: (() => void)[] = [];
    const resolveTxt: ResolveTxtFn = async (name) => {
      started.push(name);
      running++;
      most = Math.max(most, running);
      await new Promise<void>((r) => release.push(r));
      running--;
      return [[`did=${ALICE}`]];
    };
    const r = new HandleResolver({
      fetcher: createSafeFetcher({ allowPrivate: true, allowInsecure: true }),
      resolveTxt,
      allowReservedTlds: true,
      maxConcurrent: 2,
      maxQueued: 2,
    });
    const answers = ['a', 'b', 'c', 'd'].map((h) => r.resolve(`${h}.test`));
    assert.equal(await r.resolve('e.test'), undefined, 'the fifth finds the queue full');
    assert.deepEqual(started, ['_atproto.a.test', '_atproto.b.test']);
    for (const go of release.splice(0)) go();
    await waitFor(() => started.length === 4 && release.length === 2, 'the waiting two started');
    for (const go of release.splice(0)) go();
    assert.deepEqual(await Promise.all(answers), [ALICE, ALICE, ALICE, ALICE]);
    assert.deepEqual(started, ['_atproto.a.test', '_atproto.b.test', '_atproto.c.test', '_atproto.d.test']);
    assert.equal(most, 2);
  });
});
