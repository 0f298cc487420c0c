import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { readFixtureLines } from '../../test/support/interop-fixtures.ts';
import { utf8Encode } from './bytes.ts';
import {
  CidLinkWrapper,
  CODEC_DCBOR,
  CODEC_RAW,
  cidEquals,
  cidForCbor,
  cidForRaw,
  cidFromBytes,
  cidMatchesBlock,
  cidToString,
  digestEquals,
  isCid,
  isValidCidSyntax,
  parseCid,
  sha256,
  sha256Into,
  sha256Latin1,
} from './cid.ts';

describe('cid', () => {
  const block = utf8Encode('some block');

  it('sha256 matches node:crypto createHash', () => {
    for (const data of [new Uint8Array(0), block, new Uint8Array(5000).fill(7)]) {
      assert.deepEqual(Buffer.from(sha256(data)), createHash('sha256').update(data).digest());
    }
  });

  it('the latin1 digest, sha256Into and digestEquals agree with createHash', () => {
    for (const data of [new Uint8Array(0), block, new Uint8Array(5000).fill(0xff)]) {
      const want = createHash('sha256').update(data).digest();
      const latin1 = sha256Latin1(data);
      assert.equal(latin1.length, 32);
      assert.deepEqual(Buffer.from(latin1, 'latin1'), want);
      const out = new Uint8Array(40).fill(9);
      sha256Into(data, out, 5);
      assert.deepEqual(Buffer.from(out.subarray(5, 37)), want);
      assert.deepEqual([...out.subarray(0, 5), ...out.subarray(37)], [9, 9, 9, 9, 9, 9, 9, 9]);
      assert.equal(digestEquals(latin1, out, 5), true);
      for (const at of [5, 20, 36]) {
        const wrong = out.slice();
        wrong[at] ^= 0x80;
        assert.equal(digestEquals(latin1, wrong, 5), false);
      }
    }
  });

  it('builds CIDv1 sha2-256 CIDs with the right codec', () => {
    const c = cidForCbor(block);
    const r = cidForRaw(block);
    assert.equal(c.bytes.length, 36);
    assert.equal(c.bytes[1], CODEC_DCBOR);
    assert.equal(r.bytes[1], CODEC_RAW);
    assert.ok(cidToString(c).startsWith('bafyrei'));
    assert.ok(cidToString(r).startsWith('bafkrei'));
  });

  it('string and binary forms round-trip', () => {
    const c = cidForCbor(block);
    assert.ok(cidEquals(parseCid(cidToString(c)), c));
    assert.ok(cidEquals(cidFromBytes(c.bytes), c));
    assert.ok(isCid(c));
    assert.ok(!isCid({ $link: c.$link }));
  });

  it('cidMatchesBlock checks the digest, version, codec and hash type', () => {
    const c = cidForCbor(block);
    assert.ok(cidMatchesBlock(c, block));
    assert.ok(cidMatchesBlock(cidForRaw(block), block));
    assert.ok(!cidMatchesBlock(c, utf8Encode('other block')));
    const wrongHashFn = new CidLinkWrapper(c.bytes.slice());
    wrongHashFn.bytes[2] = 0x13;
    assert.ok(!cidMatchesBlock(wrongHashFn, block));
    const wrongCodec = new CidLinkWrapper(c.bytes.slice());
    wrongCodec.bytes[1] = 0x70;
    assert.ok(!cidMatchesBlock(wrongCodec, block));
  });

  it('cidEquals handles null', () => {
    const c = cidForCbor(block);
    assert.ok(cidEquals(null, null));
    assert.ok(!cidEquals(c, null));
    assert.ok(!cidEquals(c, cidForRaw(block)));
  });

  it('parseCid rejects garbage', () => {
    for (const s of ['', '.', 'bafy', 'QmbWqxBEKC3P8tqsKc98xmWNzrzDtRLMiMPL8wBuTGsMnR']) {
      assert.throws(() => parseCid(s));
    }
  });
});

describe('isValidCidSyntax (interop fixtures)', () => {
  it('accepts every valid fixture', () => {
    const lines = readFixtureLines('syntax/cid_syntax_valid.txt');
    assert.ok(lines.length > 5);
    for (const l of lines) assert.ok(isValidCidSyntax(l), l);
  });
  it('rejects every invalid fixture', () => {
    const lines = readFixtureLines('syntax/cid_syntax_invalid.txt');
    assert.ok(lines.length > 5);
    for (const l of lines) assert.ok(!isValidCidSyntax(l), l);
  });
});
