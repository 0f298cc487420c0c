import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { makeDidDocument } from '../../../test/support/identity-servers.ts';
import { base58btcEncode, formatMultikey, Keypair } from '../keys.ts';
import { DidDocumentError, parseDidDocument } from './did-document.ts';

const DID = 'did:plc:ewvi7nxzyoun6zhxrhs64oiz';
const k256 = Keypair.generate('k256');
const p256 = Keypair.generate('p256');

// A document of the shape plc.directory serves today.
function plcStyleDocument(): Record<string, unknown> {
  return {
    '@context': [
      'https://www.w3.org/ns/did/v1',
      'https://w3id.org/security/multikey/v1',
      'https://w3id.org/security/suites/secp256k1-2019/v1',
    ],
    id: DID,
    alsoKnownAs: ['at://Atproto.com'],
    verificationMethod: [
      {
        id: `${DID}#atproto`,
        type: 'Multikey',
        controller: DID,
        publicKeyMultibase: formatMultikey(k256.publicKey),
      },
    ],
    service: [
      {
        id: '#atproto_pds',
        type: 'AtprotoPersonalDataServer',
        serviceEndpoint: 'https://enoki.us-east.host.bsky.network/',
      },
    ],
  };
}

describe('parseDidDocument', () => {
  it('extracts handle, signing key and PDS endpoint', () => {
    const id = parseDidDocument(plcStyleDocument(), DID);
    assert.equal(id.did, DID);
    assert.equal(id.handle, 'atproto.com');
    assert.deepEqual(id.signingKey, k256.publicKey);
    assert.equal(id.pdsEndpoint, 'https://enoki.us-east.host.bsky.network');
  });

  it('accepts relative and absolute ids and a p256 Multikey', () => {
    const doc = makeDidDocument(DID, {
      handle: 'alice.example.com',
      pds: 'https://pds.example.com',
      multikey: formatMultikey(p256.publicKey),
    });
    (doc.verificationMethod as Array<Record<string, unknown>>)[0].id = '#atproto';
    (doc.service as Array<Record<string, unknown>>)[0].id = `${DID}#atproto_pds`;
    const id = parseDidDocument(doc, DID);
    assert.deepEqual(id.signingKey, p256.publicKey);
    assert.equal(id.pdsEndpoint, 'https://pds.example.com');
  });

  it('accepts the legacy verification method types', () => {
    for (const [kp, type] of [
      [k256, 'EcdsaSecp256k1VerificationKey2019'],
      [p256, 'EcdsaSecp256r1VerificationKey2019'],
    ] as const) {
      const doc = plcStyleDocument();
      doc.verificationMethod = [
        {
          id: '#atproto',
          type,
          controller: DID,
          publicKeyMultibase: `z${base58btcEncode(kp.publicKey.bytes)}`,
        },
      ];
      assert.deepEqual(parseDidDocument(doc, DID).signingKey, kp.publicKey);
    }
  });

  it('rejects a document for another DID', () => {
    assert.throws(
      () => parseDidDocument(plcStyleDocument(), 'did:plc:aaaaaaaaaaaaaaaaaaaaaaaa'),
      DidDocumentError,
    );
    assert.throws(() => parseDidDocument({ ...plcStyleDocument(), id: undefined }, DID), DidDocumentError);
    assert.throws(() => parseDidDocument([], DID), DidDocumentError);
    assert.throws(() => parseDidDocument(null, DID), DidDocumentError);
  });

  it('takes the first valid at:// handle and ignores the rest', () => {
    const doc = plcStyleDocument();
    doc.alsoKnownAs = [
      'https://bob.example',
      'at://not_a_handle',
      'at://Bob.Example.COM',
      'at://other.example',
    ];
    assert.equal(parseDidDocument(doc, DID).handle, 'bob.example.com');
    doc.alsoKnownAs = ['at://-bad-', 42];
    assert.equal(parseDidDocument(doc, DID).handle, undefined);
    doc.alsoKnownAs = 'at://bob.example.com';
    assert.equal(parseDidDocument(doc, DID).handle, undefined);
  });

  it('leaves out a malformed or unknown signing key', () => {
    const cases: unknown[] = [
      [{ id: '#atproto', type: 'Multikey', publicKeyMultibase: 'zNotAKey' }],
      [{ id: '#atproto', type: 'Multikey' }],
      [{ id: '#atproto', type: 'JsonWebKey2020', publicKeyMultibase: formatMultikey(k256.publicKey) }],
      [{ id: '#other', type: 'Multikey', publicKeyMultibase: formatMultikey(k256.publicKey) }],
      [
        {
          id: 'did:plc:aaaaaaaaaaaaaaaaaaaaaaaa#atproto',
          type: 'Multikey',
          publicKeyMultibase: formatMultikey(k256.publicKey),
        },
      ],
      {},
    ];
    for (const verificationMethod of cases) {
      const id = parseDidDocument({ ...plcStyleDocument(), verificationMethod }, DID);
      assert.equal(id.signingKey, undefined, JSON.stringify(verificationMethod));
    }
  });

  it('leaves out a PDS service with the wrong type or URL', () => {
    const endpoints: unknown[] = [
      'ftp://pds.example.com',
      'not a url',
      'https://user:pw@pds.example.com',
      42,
      '',
    ];
    for (const serviceEndpoint of endpoints) {
      const doc = {
        ...plcStyleDocument(),
        service: [{ id: '#atproto_pds', type: 'AtprotoPersonalDataServer', serviceEndpoint }],
      };
      assert.equal(parseDidDocument(doc, DID).pdsEndpoint, undefined, String(serviceEndpoint));
    }
    const wrongType = {
      ...plcStyleDocument(),
      service: [
        { id: '#atproto_pds', type: 'BskyFeedGenerator', serviceEndpoint: 'https://pds.example.com' },
      ],
    };
    assert.equal(parseDidDocument(wrongType, DID).pdsEndpoint, undefined);
  });

  it('keeps only the parsed facts', () => {
    const id = parseDidDocument(plcStyleDocument(), DID);
    assert.deepEqual(Object.keys(id).sort(), ['did', 'handle', 'pdsEndpoint', 'signingKey']);
  });
});
