import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type DidDocument, SimPlc, simHandleResolver } from './plc.ts';

describe('SimPlc', () => {
  let plc: SimPlc;
  before(async () => {
    plc = await SimPlc.start('test');
  });
  after(() => plc.stop());

  it('serves DID documents and 404 for unknown DIDs', async () => {
    const e = plc.create({
      handle: 'alice.pds0.test',
      signingKey: 'zQ3shexample',
      pds: 'http://127.0.0.1:5000',
    });
    assert.match(e.did, /^did:plc:[a-z2-7]{24}$/);
    const res = await fetch(`${plc.url}/${e.did}`);
    assert.equal(res.status, 200);
    const doc = (await res.json()) as DidDocument;
    assert.equal(doc.id, e.did);
    assert.deepEqual(doc.alsoKnownAs, ['at://alice.pds0.test']);
    assert.deepEqual(doc.verificationMethod[0], {
      id: `${e.did}#atproto`,
      type: 'Multikey',
      controller: e.did,
      publicKeyMultibase: 'zQ3shexample',
    });
    assert.deepEqual(doc.service[0], {
      id: '#atproto_pds',
      type: 'AtprotoPersonalDataServer',
      serviceEndpoint: 'http://127.0.0.1:5000',
    });
    const missing = await fetch(`${plc.url}/did:plc:aaaaaaaaaaaaaaaaaaaaaaaa`);
    assert.equal(missing.status, 404);
    await missing.text();
  });

  it('applies updates, handle resolution and tombstones', async () => {
    const e = plc.create({ handle: 'bob.pds0.test', signingKey: 'zKey1', pds: 'http://127.0.0.1:5000' });
    const resolve = simHandleResolver(plc);
    assert.equal(await resolve('bob.pds0.test'), e.did);
    plc.update(e.did, { handle: 'robert.pds1.test', pds: 'http://127.0.0.1:6000', signingKey: 'zKey2' });
    assert.equal(await resolve('bob.pds0.test'), null);
    assert.equal(await resolve('robert.pds1.test'), e.did);
    const doc = plc.document(e.did)!;
    assert.equal(doc.service[0].serviceEndpoint, 'http://127.0.0.1:6000');
    assert.equal(doc.verificationMethod[0].publicKeyMultibase, 'zKey2');
    plc.tombstone(e.did);
    const res = await fetch(`${plc.url}/${e.did}`);
    assert.equal(res.status, 410);
    await res.text();
  });

  it('makes the same DIDs from the same seed', () => {
    assert.equal(new SimPlc(5).newDid(), new SimPlc(5).newDid());
    assert.notEqual(new SimPlc(5).newDid(), new SimPlc(6).newDid());
  });
});
