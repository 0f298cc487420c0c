import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  makeDidDocument,
  startTestPlc,
  startTestServer,
  type TestPlcServer,
  type TestServer,
} from '../../../test/support/identity-servers.ts';
import { formatMultikey, Keypair } from '../keys.ts';
import { DidDocumentError } from './did-document.ts';
import { DidNotFoundError, DidResolutionError, DidResolver } from './did-resolver.ts';
import { createSafeFetcher } from './safe-fetch.ts';

const ALICE = 'did:plc:aaaaaaaaaaaaaaaaaaaaaaaa';
const BOB = 'did:plc:bbbbbbbbbbbbbbbbbbbbbbbb';
const GONE = 'did:plc:cccccccccccccccccccccccc';
const key = Keypair.generate('k256').publicKey;

describe('DidResolver', () => {
  let plc: TestPlcServer;
  let web: TestServer;
  let webBody = '';
  let webStatus = 200;
  const devFetcher = createSafeFetcher({
    allowPrivate: true,
    allowInsecure: true,
    lookup: async () => [{ address: '127.0.0.1', family: 4 }],
  });

  before(async () => {
    plc = await startTestPlc();
    plc.docs.set(
      ALICE,
      makeDidDocument(ALICE, {
        handle: 'alice.test',
        pds: 'https://pds.test',
        multikey: formatMultikey(key),
      }),
    );
    plc.docs.set(BOB, makeDidDocument(ALICE));
    plc.tombstoned.add(GONE);
    web = await startTestServer((req, res) => {
      assert.equal(req.url, '/.well-known/did.json');
      res.writeHead(webStatus, { 'content-type': 'application/json' });
      res.end(webBody);
    });
  });
  after(async () => {
    await plc.close();
    await web.close();
  });

  it('resolves did:plc from the configured directory', async () => {
    const r = new DidResolver({ fetcher: devFetcher, plcUrl: `${plc.url}/` });
    const id = await r.resolve(ALICE);
    assert.deepEqual(id, {
      did: ALICE,
      handle: 'alice.test',
      signingKey: key,
      pdsEndpoint: 'https://pds.test',
    });
  });

  it('maps 404 to not found and 410 to tombstoned', async () => {
    const r = new DidResolver({ fetcher: devFetcher, plcUrl: plc.url });
    await assert.rejects(
      r.resolve('did:plc:dddddddddddddddddddddddd'),
      (e: unknown) => e instanceof DidNotFoundError && !e.tombstoned,
    );
    await assert.rejects(r.resolve(GONE), (e: unknown) => e instanceof DidNotFoundError && e.tombstoned);
  });

  it('rejects a document served for another DID', async () => {
    const r = new DidResolver({ fetcher: devFetcher, plcUrl: plc.url });
    await assert.rejects(r.resolve(BOB), DidDocumentError);
  });

  it('refuses malformed and unsupported DIDs without fetching', async () => {
    const r = new DidResolver({ fetcher: devFetcher, plcUrl: plc.url });
    const before = plc.requests.length;
    for (const did of [
      'did:plc:short',
      'did:plc:AAAAAAAAAAAAAAAAAAAAAAAA',
      'did:key:zQ3sh',
      'did:web:example.com:u:alice',
      'nope',
    ]) {
      await assert.rejects(
        r.resolve(did),
        (e: unknown) => e instanceof DidResolutionError && !e.transient,
        did,
      );
    }
    assert.equal(plc.requests.length, before);
  });

  it('builds hostname-level did:web URLs only', () => {
    const r = new DidResolver({ fetcher: devFetcher });
    assert.equal(r.documentUrl('did:web:example.com'), 'https://example.com/.well-known/did.json');
    assert.throws(() => r.documentUrl('did:web:localhost%3A8080'), /only allowed in development/);
    assert.throws(() => r.documentUrl('did:web:example.com%3A8080'), DidResolutionError);
    assert.throws(() => r.documentUrl('did:web:example.com:path'), /path-based/);
    assert.throws(() => r.documentUrl('did:web:192.168.0.1'), DidResolutionError);
    const dev = new DidResolver({ fetcher: devFetcher, allowInsecureDidWeb: true });
    assert.equal(dev.documentUrl('did:web:localhost%3A8080'), 'http://localhost:8080/.well-known/did.json');
    assert.equal(dev.documentUrl('did:plc:aaaaaaaaaaaaaaaaaaaaaaaa'), `https://plc.directory/${ALICE}`);
  });

  it('resolves a localhost did:web in development mode', async () => {
    const did = `did:web:localhost%3A${web.port}`;
    webStatus = 200;
    webBody = JSON.stringify(makeDidDocument(did, { handle: 'web.test', pds: 'http://localhost:1234' }));
    const r = new DidResolver({ fetcher: devFetcher, allowInsecureDidWeb: true });
    const id = await r.resolve(did);
    assert.equal(id.handle, 'web.test');
    assert.equal(id.pdsEndpoint, 'http://localhost:1234');
    webBody = '{"id": "did:web:elsewhere.test"}';
    await assert.rejects(r.resolve(did), DidDocumentError);
    webBody = '{oops';
    await assert.rejects(r.resolve(did), DidDocumentError);
    webStatus = 404;
    webBody = 'not here';
    await assert.rejects(r.resolve(did), DidNotFoundError);
    webStatus = 503;
    await assert.rejects(r.resolve(did), (e: unknown) => e instanceof DidResolutionError && e.transient);
  });

  it('reports a did:web host on a private address as a permanent failure', async () => {
    const prod = createSafeFetcher({ lookup: async () => [{ address: '10.0.0.7', family: 4 }] });
    const r = new DidResolver({ fetcher: prod });
    await assert.rejects(
      r.resolve('did:web:internal.example.com'),
      (e: unknown) => e instanceof DidResolutionError && !e.transient && /10\.0\.0\.7/.test(e.message),
    );
  });

  it('uses the trusted PLC fetcher for did:plc only', async () => {
    const refusing = createSafeFetcher({ lookup: async () => [{ address: '10.0.0.7', family: 4 }] });
    const r = new DidResolver({ fetcher: refusing, plcFetcher: devFetcher, plcUrl: plc.url });
    assert.equal((await r.resolve(ALICE)).handle, 'alice.test');
    await assert.rejects(r.resolve('did:web:internal.example.com'), /10\.0\.0\.7/);
  });

  it('reports timeouts as transient', async () => {
    plc.delayMs = 200;
    try {
      const r = new DidResolver({ fetcher: devFetcher, plcUrl: plc.url, timeoutMs: 30 });
      await assert.rejects(r.resolve(ALICE), (e: unknown) => e instanceof DidResolutionError && e.transient);
    } finally {
      plc.delayMs = 0;
    }
  });

  it('refuses oversized documents', async () => {
    const big = makeDidDocument(ALICE);
    big.alsoKnownAs = [`at://${'a'.repeat(70_000)}.test`];
    plc.docs.set('did:plc:eeeeeeeeeeeeeeeeeeeeeeee', { ...big, id: 'did:plc:eeeeeeeeeeeeeeeeeeeeeeee' });
    const r = new DidResolver({ fetcher: devFetcher, plcUrl: plc.url });
    await assert.rejects(r.resolve('did:plc:eeeeeeeeeeeeeeeeeeeeeeee'), /exceeds 65536 bytes/);
  });
});
