import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fromBase64, toBase64 } from './bytes.ts';
import { CborError, decodeCbor, decodeCborFirst, encodeCbor, MAX_CBOR_DEPTH } from './cbor.ts';
import { cidForCbor, cidForRaw, isCid } from './cid.ts';

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

describe('decodeCbor strictness', () => {
  const rejects: Array<[string, string]> = [
    ['non-canonical key order (b before a)', 'a2 6162 01 6161 02'],
    ['non-canonical key order (longer key first)', 'a2 626161 01 6162 02'],
    ['duplicate keys', 'a2 6161 01 6161 02'],
    ['indefinite-length map', 'bf 6161 01 ff'],
    ['indefinite-length array', '9f 01 02 ff'],
    ['indefinite-length string', '7f 6161 ff'],
    ['indefinite-length bytes', '5f 4101 ff'],
    ['non-minimal int (1 byte for 5)', '18 05'],
    ['non-minimal int (2 bytes for 200)', '19 00c8'],
    ['non-minimal int (4 bytes for 300)', '1a 0000012c'],
    ['non-minimal int (8 bytes for 70000)', '1b 0000000000011170'],
    ['non-minimal length prefix', '78 01 61'],
    ['tag other than 42', 'c1 01'],
    ['tag 42 on a non-bytes value', 'd82a 01'],
    ['tag 42 with a malformed CID', 'd82a 43 000102'],
    ['trailing bytes', '01 02'],
    ['uint beyond safe range', '1b 0020000000000000'],
    ['negative int beyond safe range', '3b 0020000000000000'],
    ['negative -(2^53)', '3b 001fffffffffffff'],
    ['half float', 'f9 3c00'],
    ['single float', 'fa 3f800000'],
    ['NaN', 'fb 7ff8000000000000'],
    ['undefined', 'f7'],
    ['non-string map key', 'a1 01 02'],
    ['invalid utf-8', '62 c328'],
    ['truncated', '63 6162'],
    ['empty input', ''],
  ];
  for (const [name, h] of rejects) {
    it(`rejects ${name}`, () => assert.throws(() => decodeCbor(hex(h))));
  }

  it('accepts the largest safe integers', () => {
    assert.equal(decodeCbor(hex('1b 001fffffffffffff')), Number.MAX_SAFE_INTEGER);
    assert.equal(decodeCbor(hex('3b 001ffffffffffffe')), Number.MIN_SAFE_INTEGER);
  });

  it('decodeCborFirst returns the rest', () => {
    const [v, rest] = decodeCborFirst(hex('a1 6161 01 02 03'));
    assert.deepEqual(v, { a: 1 });
    assert.deepEqual(rest, hex('0203'));
  });
});

describe('CBOR round trips', () => {
  const link = cidForCbor(encodeCbor({ x: 1 }));
  const blob = cidForRaw(new Uint8Array([1, 2, 3]));
  const value = {
    seq: 123456789,
    neg: -1000,
    str: 'héllo 😀',
    empty: '',
    t: true,
    f: false,
    n: null,
    bytes: new Uint8Array([0, 1, 2, 255]),
    link,
    arr: [1, 'two', [blob], { nested: new Uint8Array(0) }],
    big: Number.MAX_SAFE_INTEGER,
  };

  it('decode(encode(v)) equals v, with Uint8Array bytes and Cid links', () => {
    const bytes = encodeCbor(value);
    const back = decodeCbor(bytes) as typeof value;
    assert.ok(back.bytes instanceof Uint8Array);
    assert.ok(isCid(back.link));
    assert.equal(back.link.$link, link.$link);
    assert.deepEqual(toBase64(back.bytes), toBase64(value.bytes));
    assert.deepEqual(encodeCbor(back), bytes);
  });

  it('sorts keys canonically (length first, then bytes)', () => {
    const bytes = encodeCbor({ bb: 1, a: 2, c: 3, aa: 4 });
    assert.deepEqual(bytes, hex('a4 6161 02 6163 03 626161 04 626262 01'));
  });

  it('omits undefined fields', () => {
    assert.deepEqual(encodeCbor({ a: 1, b: undefined }), encodeCbor({ a: 1 }));
  });

  it('encodes CIDs as tag 42 with a 0x00 prefix', () => {
    const bytes = encodeCbor(link);
    assert.deepEqual(bytes.subarray(0, 5), hex('d82a 5825 00'));
    assert.deepEqual(bytes.subarray(5), link.bytes);
  });

  it('refuses NaN, Infinity and unsafe integers', () => {
    assert.throws(() => encodeCbor(Number.NaN));
    assert.throws(() => encodeCbor(Number.POSITIVE_INFINITY));
    assert.throws(() => encodeCbor(2 ** 53));
  });

  it('re-encodes a known vector byte for byte', () => {
    const b64 = 'omFhAWFigwECAw';
    const v = decodeCbor(fromBase64(b64));
    assert.deepEqual(v, { a: 1, b: [1, 2, 3] });
    assert.equal(toBase64(encodeCbor(v)).replace(/=+$/, ''), b64);
  });

  it('unwraps bytes under a "constructor" key', () => {
    const v = decodeCbor(hex('a1 6b636f6e7374727563746f72 a1 6161 4101')) as object;
    const inner = Object.getOwnPropertyDescriptor(v, 'constructor')?.value as Record<string, unknown>;
    assert.deepEqual(inner.a, new Uint8Array([1]));
  });

  it('keeps a "__proto__" key as data in both directions', () => {
    const bytes = hex('a1 695f5f70726f746f5f5f a1 6161 4101');
    const v = decodeCbor(bytes) as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(v), Object.prototype);
    assert.ok(Object.hasOwn(v, '__proto__'));
    assert.deepEqual(encodeCbor(v), bytes);
    assert.equal(({} as Record<string, unknown>).a, undefined);
  });

  it('refuses JSON-form $link / $bytes objects instead of silently converting them', () => {
    const link = cidForCbor(new Uint8Array([1]));
    assert.throws(() => encodeCbor({ a: { $link: link.$link } }), TypeError);
    assert.throws(() => encodeCbor([{ $bytes: 'AQID' }]), TypeError);
    // A CBOR map that merely has such a key among others is ordinary data.
    const other = { $link: 'x', other: 1 };
    assert.deepEqual(decodeCbor(encodeCbor(other)), other);
  });
});

describe('decodeCbor nesting and error type (issue 12 fuzzing)', () => {
  const nested = (depth: number, open: number[]): Uint8Array => {
    const out: number[] = [];
    for (let i = 0; i < depth; i++) out.push(...open);
    out.push(0xf6);
    return new Uint8Array(out);
  };

  it(`accepts nesting up to MAX_CBOR_DEPTH (${MAX_CBOR_DEPTH}) and refuses one deeper with a clear CborError`, () => {
    for (const open of [[0x81], [0xa1, 0x61, 0x61]]) {
      assert.doesNotThrow(() => decodeCbor(nested(MAX_CBOR_DEPTH, open)));
      assert.throws(
        () => decodeCbor(nested(MAX_CBOR_DEPTH + 1, open)),
        (err) =>
          err instanceof CborError && err.reason === 'too-deep' && /nested deeper than 128/.test(err.message),
      );
      assert.throws(() => decodeCborFirst(nested(MAX_CBOR_DEPTH + 1, open)), CborError);
    }
  });

  it('refuses 100,000 levels of nesting with a CborError, not a stack overflow', () => {
    for (const open of [[0x81], [0xa1, 0x60]]) {
      assert.throws(
        () => decodeCbor(nested(100_000, open)),
        (err) => err instanceof CborError && err.reason === 'too-deep',
      );
    }
  });

  it('throws CborError (reason malformed) for every other defect, keeping the decoder message', () => {
    assert.throws(
      () => decodeCbor(hex('a2 6162 01 6161 02')),
      (err) => err instanceof CborError && err.reason === 'malformed' && /canonical order/.test(err.message),
    );
    assert.throws(() => decodeCborFirst(hex('63 6162')), CborError);
  });
});
