import assert from 'node:assert/strict';
import * as nodeCrypto from 'node:crypto';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { readFixtureJson } from '../../test/support/interop-fixtures.ts';
import { fromBase64 } from './bytes.ts';
import { sha256 } from './cid.ts';
import {
  base58btcDecode,
  base58btcEncode,
  formatDidKey,
  formatMultikey,
  isHighS,
  K256_NATIVE,
  type KeyAlg,
  KeyError,
  Keypair,
  type PublicKey,
  parseDidKey,
  parseLegacyMultibaseKey,
  parseMultikey,
  toHighS,
  verifySignature,
  verifySignatureDidKey,
} from './keys.ts';

interface SignatureFixture {
  comment: string;
  messageBase64: string;
  algorithm: 'ES256' | 'ES256K';
  didDocSuite: string;
  publicKeyDid: string;
  publicKeyMultibase: string;
  signatureBase64: string;
  validSignature: boolean;
  tags: string[];
}

const sigFixtures = readFixtureJson<SignatureFixture[]>('crypto/signature-fixtures.json');
const k256DidFixtures = readFixtureJson<{ privateKeyBytesHex: string; publicDidKey: string }[]>(
  'crypto/w3c_didkey_K256.json',
);
const p256DidFixtures = readFixtureJson<{ privateKeyBytesBase58: string; publicDidKey: string }[]>(
  'crypto/w3c_didkey_P256.json',
);

const msg = new TextEncoder().encode('atproto relay test message');

describe('signature fixtures (crypto/signature-fixtures.json)', () => {
  assert.ok(sigFixtures.length >= 6);
  for (const f of sigFixtures) {
    it(`${f.comment}`, () => {
      const alg: KeyAlg = f.algorithm === 'ES256K' ? 'k256' : 'p256';
      const key = parseDidKey(f.publicKeyDid);
      assert.equal(key.alg, alg);
      assert.equal(formatDidKey(key), f.publicKeyDid);
      const legacy = parseLegacyMultibaseKey(f.didDocSuite, f.publicKeyMultibase);
      assert.deepEqual(legacy, key);
      const message = fromBase64(f.messageBase64);
      const sig = fromBase64(f.signatureBase64);
      assert.equal(verifySignature(key, message, sig), f.validSignature);
      assert.equal(verifySignatureDidKey(f.publicKeyDid, message, sig), f.validSignature);
      if (f.tags.includes('high-s')) {
        // Rejected only because of S: the low-S twin of the same signature verifies.
        assert.equal(isHighS(alg, sig), true);
        assert.equal(verifySignature(key, message, toHighS(alg, sig)), true);
      }
      if (f.tags.includes('der-encoded')) assert.notEqual(sig.length, 64);
    });
  }
});

describe('k256 native addon', () => {
  it('loads the native libsecp256k1 binding', () => {
    assert.equal(K256_NATIVE, true);
  });

  it("the addon's own ecdsaVerify rejects high-S, while OpenSSL accepts high-S p256", () => {
    const secp = createRequire(import.meta.url)('secp256k1/bindings') as typeof import('secp256k1');
    const kp = Keypair.generate('k256');
    const sig = kp.sign(msg);
    assert.equal(secp.ecdsaVerify(sig, sha256(msg), kp.publicKey.bytes), true);
    assert.equal(secp.ecdsaVerify(toHighS('k256', sig), sha256(msg), kp.publicKey.bytes), false);

    // node:crypto does not enforce low-S, which is why verifySignature checks it itself.
    const p = Keypair.generate('p256');
    const high = toHighS('p256', p.sign(msg));
    const spki = nodeCrypto.createPublicKey({
      key: { kty: 'EC', crv: 'P-256', ...jwkXY(p) },
      format: 'jwk',
    });
    assert.equal(nodeCrypto.verify('sha256', msg, { key: spki, dsaEncoding: 'ieee-p1363' }, high), true);
    assert.equal(verifySignature(p.publicKey, msg, high), false);
  });
});

function jwkXY(kp: Keypair): { x: string; y: string } {
  const uncompressed = nodeCrypto.ECDH.convertKey(
    Buffer.from(kp.publicKey.bytes),
    'prime256v1',
    undefined,
    undefined,
    'uncompressed',
  ) as Buffer;
  return {
    x: uncompressed.subarray(1, 33).toString('base64url'),
    y: uncompressed.subarray(33, 65).toString('base64url'),
  };
}

describe('did:key fixtures', () => {
  for (const f of k256DidFixtures) {
    it(`k256 ${f.publicDidKey}`, () => {
      const kp = Keypair.fromPrivateKey('k256', Uint8Array.from(Buffer.from(f.privateKeyBytesHex, 'hex')));
      assert.equal(kp.did(), f.publicDidKey);
      const key = parseDidKey(f.publicDidKey);
      assert.deepEqual(key, kp.publicKey);
      assert.equal(formatDidKey(key), f.publicDidKey);
      assert.equal(verifySignature(key, msg, kp.sign(msg)), true);
    });
  }
  for (const f of p256DidFixtures) {
    it(`p256 ${f.publicDidKey}`, () => {
      const kp = Keypair.fromPrivateKey('p256', base58btcDecode(f.privateKeyBytesBase58));
      assert.equal(kp.did(), f.publicDidKey);
      const key = parseDidKey(f.publicDidKey);
      assert.deepEqual(key, kp.publicKey);
      assert.equal(verifySignature(key, msg, kp.sign(msg)), true);
    });
  }
});

describe('Keypair sign / verify', () => {
  for (const alg of ['k256', 'p256'] as const) {
    it(`${alg}: round trip, wrong message, wrong key, high-S`, () => {
      const kp = Keypair.generate(alg);
      const other = Keypair.generate(alg);
      assert.equal(kp.publicKey.bytes.length, 33);
      assert.ok(kp.did().startsWith(alg === 'k256' ? 'did:key:zQ3s' : 'did:key:zDna'));
      const sig = kp.sign(msg);
      assert.equal(sig.length, 64);
      assert.equal(isHighS(alg, sig), false);
      assert.equal(verifySignature(kp.publicKey, msg, sig), true);
      assert.equal(verifySignature(kp.publicKey, msg.subarray(1), sig), false);
      assert.equal(verifySignature(other.publicKey, msg, sig), false);
      const high = toHighS(alg, sig);
      assert.equal(isHighS(alg, high), true);
      assert.equal(verifySignature(kp.publicKey, msg, high), false);
      assert.deepEqual(toHighS(alg, high), sig);
      // Signing by a key restored from its private bytes gives the same public key.
      const restored = Keypair.fromPrivateKey(alg, kp.exportPrivateKey());
      assert.deepEqual(restored.publicKey, kp.publicKey);
      assert.equal(verifySignature(kp.publicKey, msg, restored.sign(msg)), true);
    });
  }

  it('a key prepared once (the per-thread key cache) verifies only its own signatures, hit after hit', () => {
    for (const alg of ['k256', 'p256'] as const) {
      const keys = Array.from({ length: 8 }, () => Keypair.generate(alg));
      const sigs = keys.map((k) => k.sign(msg));
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < keys.length; i++) {
          for (let j = 0; j < keys.length; j++) {
            assert.equal(verifySignature(keys[i].publicKey, msg, sigs[j]), i === j, `${alg} ${i}/${j}`);
          }
        }
      }
      // The same point in a fresh array (a key parsed again) hits the cache and still verifies.
      const copy: PublicKey = { alg, bytes: Uint8Array.from(keys[0].publicKey.bytes) };
      assert.equal(verifySignature(copy, msg, sigs[0]), true);
      // A 65-byte uncompressed point is refused, as before the cache.
      assert.equal(verifySignature({ alg, bytes: new Uint8Array(65).fill(4) }, msg, sigs[0]), false);
    }
  });

  it('k256 signatures are deterministic (RFC 6979)', () => {
    const kp = Keypair.generate('k256');
    assert.deepEqual(kp.sign(msg), kp.sign(msg));
  });

  it('p256 signatures are always normalised to low-S', () => {
    const kp = Keypair.generate('p256');
    for (let i = 0; i < 100; i++) {
      const m = Uint8Array.of(i, i >> 8, 7);
      const sig = kp.sign(m);
      assert.equal(isHighS('p256', sig), false);
      assert.equal(verifySignature(kp.publicKey, m, sig), true);
    }
  });

  it('rejects out-of-range private keys', () => {
    for (const alg of ['k256', 'p256'] as const) {
      assert.throws(() => Keypair.fromPrivateKey(alg, new Uint8Array(32)), KeyError);
      assert.throws(() => Keypair.fromPrivateKey(alg, new Uint8Array(32).fill(0xff)), KeyError);
      assert.throws(() => Keypair.fromPrivateKey(alg, new Uint8Array(31).fill(1)), KeyError);
    }
  });
});

describe('verifySignature never throws on bad input', () => {
  const kp = Keypair.generate('k256');
  const pp = Keypair.generate('p256');
  const good = kp.sign(msg);
  const goodP = pp.sign(msg);
  const badKeys: PublicKey[] = [
    { alg: 'k256', bytes: new Uint8Array(33) },
    { alg: 'p256', bytes: new Uint8Array(33) },
    { alg: 'k256', bytes: Uint8Array.of(2, ...new Uint8Array(32).fill(0xff)) },
    { alg: 'p256', bytes: Uint8Array.of(2, ...new Uint8Array(32).fill(0xff)) },
    { alg: 'p256', bytes: new Uint8Array(0) },
    { alg: 'ed25519' as KeyAlg, bytes: kp.publicKey.bytes },
    null as unknown as PublicKey,
  ];
  it('bad keys give false', () => {
    for (const key of badKeys) {
      assert.equal(verifySignature(key, msg, good), false);
      assert.equal(verifySignature(key, msg, goodP), false);
    }
  });
  it('bad signatures give false', () => {
    const zeros = new Uint8Array(64);
    const rOnly = Uint8Array.from(good);
    rOnly.fill(0, 32);
    const badSigs = [new Uint8Array(0), good.subarray(0, 63), Uint8Array.of(...good, 0), zeros, rOnly];
    for (const sig of badSigs) {
      assert.equal(verifySignature(kp.publicKey, msg, sig), false);
      assert.equal(verifySignature(pp.publicKey, msg, sig), false);
    }
    assert.equal(verifySignature(kp.publicKey, msg, 'nope' as unknown as Uint8Array), false);
    assert.equal(verifySignature(kp.publicKey, null as unknown as Uint8Array, good), false);
    assert.equal(verifySignatureDidKey('did:key:nope', msg, good), false);
  });
  it('DER-encoded signatures of valid low-S signatures are refused', () => {
    for (const [keypair, sig] of [
      [kp, good],
      [pp, goodP],
    ] as const) {
      const der = compactToDer(sig);
      assert.ok(der.length > 64);
      assert.equal(verifySignature(keypair.publicKey, msg, der), false);
    }
  });
});

function compactToDer(sig: Uint8Array): Uint8Array {
  const int = (b: Uint8Array): number[] => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    const v = [...b.subarray(i)];
    if (v[0] & 0x80) v.unshift(0);
    return [0x02, v.length, ...v];
  };
  const body = [...int(sig.subarray(0, 32)), ...int(sig.subarray(32))];
  return Uint8Array.from([0x30, body.length, ...body]);
}

describe('parsing errors', () => {
  const k = Keypair.generate('k256').publicKey;
  const p = Keypair.generate('p256').publicKey;

  it('round trips Multikey', () => {
    assert.deepEqual(parseMultikey(formatMultikey(k)), k);
    assert.deepEqual(parseMultikey(formatMultikey(p)), p);
    assert.equal(formatDidKey(k), `did:key:${formatMultikey(k)}`);
  });

  it('throws KeyError with a message on malformed did:key / multikey', () => {
    const prefixed = (prefix: number[], key: Uint8Array) =>
      `z${base58btcEncode(Uint8Array.of(...prefix, ...key))}`;
    const uncompressedK = Uint8Array.from(
      nodeCrypto.ECDH.convertKey(
        Buffer.from(k.bytes),
        'secp256k1',
        undefined,
        undefined,
        'uncompressed',
      ) as Buffer,
    );
    const cases: [string, RegExp][] = [
      ['did:plc:abc', /not a did:key/],
      ['did:key:', /base58btc/],
      ['did:key:Q3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme', /base58btc/],
      ['did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYB0e', /invalid base58btc character/],
      // ed25519 (0xed01) is not an atproto key type
      ['did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK', /unsupported key type/],
      [`did:key:${prefixed([0xe7, 0x01], k.bytes.subarray(0, 32))}`, /33-byte compressed/],
      [`did:key:${prefixed([0xe7, 0x01], uncompressedK)}`, /uncompressed k256 public keys are not allowed/],
      [
        `did:key:${prefixed([0x80, 0x24], Uint8Array.of(2, ...new Uint8Array(32).fill(0xff)))}`,
        /not a point/,
      ],
      [
        `did:key:${prefixed([0xe7, 0x01], Uint8Array.of(3, ...new Uint8Array(32).fill(0xff)))}`,
        /not a point/,
      ],
    ];
    for (const [input, message] of cases) {
      assert.throws(
        () => parseDidKey(input),
        (err: unknown) => err instanceof KeyError && message.test(err.message),
      );
    }
    assert.throws(() => parseMultikey(''), KeyError);
    assert.throws(() => formatDidKey({ alg: 'k256', bytes: new Uint8Array(33) }), KeyError);
  });

  it('legacy multibase keys: compressed or uncompressed point, raw (no multicodec)', () => {
    const uncompressed = Uint8Array.from(
      nodeCrypto.ECDH.convertKey(
        Buffer.from(p.bytes),
        'prime256v1',
        undefined,
        undefined,
        'uncompressed',
      ) as Buffer,
    );
    assert.deepEqual(
      parseLegacyMultibaseKey('EcdsaSecp256r1VerificationKey2019', `z${base58btcEncode(p.bytes)}`),
      p,
    );
    assert.deepEqual(
      parseLegacyMultibaseKey('EcdsaSecp256r1VerificationKey2019', `z${base58btcEncode(uncompressed)}`),
      p,
    );
    assert.deepEqual(
      parseLegacyMultibaseKey('EcdsaSecp256k1VerificationKey2019', `z${base58btcEncode(k.bytes)}`),
      k,
    );
    assert.throws(() => parseLegacyMultibaseKey('Multikey', formatMultikey(k)), /unsupported legacy/);
    assert.throws(() => parseLegacyMultibaseKey('toString', formatMultikey(k)), /unsupported legacy/);
    // A multicodec-prefixed value under a legacy type is 35 bytes: refused.
    assert.throws(
      () => parseLegacyMultibaseKey('EcdsaSecp256k1VerificationKey2019', formatMultikey(k)),
      KeyError,
    );
  });

  it('base58btc round trips, keeping leading zero bytes', () => {
    for (const bytes of [
      new Uint8Array(0),
      Uint8Array.of(0),
      Uint8Array.of(0, 0, 1, 2),
      nodeCrypto.randomBytes(40),
    ]) {
      assert.deepEqual(base58btcDecode(base58btcEncode(bytes)), Uint8Array.from(bytes));
    }
    assert.equal(base58btcEncode(Uint8Array.of(0, 0, 0x28, 0x7f, 0xb4, 0xcd)), '11233QC4');
  });
});
