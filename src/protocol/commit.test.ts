import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeCbor } from './cbor.ts';
import { cidEquals, cidForCbor } from './cid.ts';
import {
  type Commit,
  CommitError,
  type CommitErrorReason,
  decodeCommit,
  encodeCommit,
  signCommit,
  unsignedCommitBytes,
  validateCommit,
  verifyCommitSignature,
} from './commit.ts';
import { Keypair, verifySignature } from './keys.ts';
import { Mst } from './mst.ts';

const DID = 'did:plc:ewvi7nxzyoun6zhxrhs64oiz';
const REV = '3jzfcijpj2z2a';
const DATA = Mst.empty().rootCid();

function rejects(value: unknown, reason: CommitErrorReason): void {
  assert.throws(
    () => validateCommit(value),
    (err: unknown) => err instanceof CommitError && err.reason === reason,
    reason,
  );
  if (value !== null && typeof value === 'object') {
    let bytes: Uint8Array | null = null;
    try {
      bytes = encodeCbor(value);
    } catch {
      // not encodable as DAG-CBOR: the structural check above is enough
    }
    if (bytes) {
      assert.throws(
        () => decodeCommit(bytes),
        (err: unknown) => err instanceof CommitError && err.reason === reason,
      );
    }
  }
}

describe('commit', () => {
  for (const alg of ['k256', 'p256'] as const) {
    it(`signs and verifies (${alg})`, () => {
      const key = Keypair.generate(alg);
      const { commit, bytes, cid } = signCommit({ did: DID, data: DATA, rev: REV }, key);
      assert.equal(commit.version, 3);
      assert.equal(commit.prev, null);
      assert.equal(commit.sig.length, 64);
      assert.ok(cidEquals(cid, cidForCbor(bytes)));
      const decoded = decodeCommit(bytes);
      assert.equal(decoded.did, DID);
      assert.equal(decoded.rev, REV);
      assert.ok(cidEquals(decoded.data, DATA));
      assert.deepEqual(encodeCommit(decoded), bytes);
      assert.ok(verifyCommitSignature(decoded, key.publicKey));
      // The signature covers exactly the commit without `sig`.
      const { sig, ...unsigned } = decoded;
      assert.deepEqual(unsignedCommitBytes(decoded), encodeCbor(unsigned));
      assert.ok(verifySignature(key.publicKey, encodeCbor(unsigned), sig));

      assert.equal(verifyCommitSignature(decoded, Keypair.generate(alg).publicKey), false);
      assert.equal(verifyCommitSignature({ ...decoded, rev: '3jzfcijpj2z2b' }, key.publicKey), false);
      assert.equal(
        verifyCommitSignature({ ...decoded, sig: decoded.sig.subarray(0, 63) }, key.publicKey),
        false,
      );
      const high = signCommit({ did: DID, data: DATA, rev: REV }, key, { highS: true });
      assert.equal(verifyCommitSignature(decodeCommit(high.bytes), key.publicKey), false);
    });
  }

  it('writes the signed bytes exactly as the general encoder would, for any DID, rev and prev', () => {
    const cid = (i: number) => cidForCbor(encodeCbor({ i }));
    const dids = [
      'did:plc:a',
      DID,
      `did:web:${'a'.repeat(20)}.example`, // text head of 1 byte → 2 bytes at 24
      `did:web:${'b'.repeat(300)}.example`, // 3-byte text head
      `did:web:${'c'.repeat(2030)}`,
      'did:web:exämple.com', // non-ASCII: the general encoder
    ];
    const revs = [REV, '2222222222222', 'x'.repeat(30), 'révision'];
    let n = 0;
    for (const did of dids) {
      for (const rev of revs) {
        for (const prev of [null, cid(n)]) {
          const unsigned = { did, version: 3 as const, data: cid(n + 1000), rev, prev };
          assert.deepEqual(
            unsignedCommitBytes(unsigned),
            encodeCbor(unsigned),
            `${did.slice(0, 40)} ${rev} ${prev}`,
          );
          n++;
        }
      }
    }
  });

  it('keeps a non-null prev', () => {
    const key = Keypair.generate('k256');
    const first = signCommit({ did: DID, data: DATA, rev: REV }, key);
    const second = signCommit({ did: DID, data: DATA, rev: '3jzfcijpj2z2b', prev: first.cid }, key);
    const decoded = decodeCommit(second.bytes);
    assert.ok(cidEquals(decoded.prev, first.cid));
    assert.ok(verifyCommitSignature(decoded, key.publicKey));
  });

  it('rejects malformed commits with a reason', () => {
    const key = Keypair.generate('k256');
    const good: Commit = signCommit({ did: DID, data: DATA, rev: REV }, key).commit;
    const without = (f: keyof Commit) => {
      const c: Record<string, unknown> = { ...good };
      delete c[f];
      return c;
    };
    assert.throws(
      () => decodeCommit(new Uint8Array([0xff])),
      (e: unknown) => e instanceof CommitError && e.reason === 'not-cbor',
    );
    // non-canonical map order is not DAG-CBOR
    const nonCanonical = new Uint8Array([0xa2, 0x61, 0x62, 0x01, 0x61, 0x61, 0x02]);
    assert.throws(
      () => decodeCommit(nonCanonical),
      (e: unknown) => e instanceof CommitError && e.reason === 'not-cbor',
    );
    rejects(null, 'not-object');
    rejects([good], 'not-object');
    rejects('commit', 'not-object');
    rejects({ ...good, extra: 1 }, 'unknown-field');
    for (const f of ['did', 'version', 'data', 'rev', 'prev', 'sig'] as const)
      rejects(without(f), 'missing-field');
    rejects({ ...good, version: 2 }, 'bad-version');
    rejects({ ...good, version: '3' }, 'bad-version');
    rejects({ ...good, did: 'plc:abc' }, 'bad-did');
    rejects({ ...good, did: 'did:PLC:abc' }, 'bad-did');
    rejects({ ...good, did: `did:plc:${'a'.repeat(2048)}` }, 'bad-did');
    rejects({ ...good, did: 5 }, 'bad-did');
    rejects({ ...good, data: DATA.$link }, 'bad-data');
    rejects({ ...good, data: null }, 'bad-data');
    rejects({ ...good, rev: '3jzfcijpj2z2' }, 'bad-rev');
    rejects({ ...good, rev: 'zzzzzzzzzzzzz' }, 'bad-rev');
    rejects({ ...good, rev: 1 }, 'bad-rev');
    rejects({ ...good, prev: 'bafy' }, 'bad-prev');
    rejects({ ...good, sig: 'abc' }, 'bad-sig');
    assert.deepEqual(validateCommit({ ...good }), good);
  });
});
