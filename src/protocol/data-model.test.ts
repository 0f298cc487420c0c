import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readFixtureJson } from '../../test/support/interop-fixtures.ts';
import { fromBase64, toBase64 } from './bytes.ts';
import { decodeCbor, encodeCbor } from './cbor.ts';
import { cidForCbor, isCid } from './cid.ts';
import { DataModelError, dataToJson, isValidDataModel, jsonToData, validateDataModel } from './data-model.ts';

interface Fixture {
  json: unknown;
  cbor_base64: string;
  cid: string;
}
interface ValidityCase {
  note: string;
  json: unknown;
}

const unpadded = (b: Uint8Array): string => toBase64(b).replace(/=+$/, '');

describe('data-model-fixtures.json', () => {
  const fixtures = readFixtureJson<Fixture[]>('data-model/data-model-fixtures.json');
  it('has cases', () => assert.ok(fixtures.length >= 3));
  fixtures.forEach((f, i) => {
    it(`case ${i}: JSON → CBOR → CID`, () => {
      const bytes = encodeCbor(jsonToData(f.json));
      assert.equal(unpadded(bytes), f.cbor_base64);
      assert.equal(cidForCbor(bytes).$link, f.cid);
    });
    it(`case ${i}: CBOR → JSON`, () => {
      const value = decodeCbor(fromBase64(f.cbor_base64));
      assert.deepEqual(dataToJson(value), f.json);
      validateDataModel(value);
      validateDataModel(f.json);
    });
  });
});

describe('validateDataModel', () => {
  for (const c of readFixtureJson<ValidityCase[]>('data-model/data-model-valid.json')) {
    it(`valid: ${c.note}`, () => {
      validateDataModel(c.json);
      validateDataModel(jsonToData(c.json));
    });
  }
  for (const c of readFixtureJson<ValidityCase[]>('data-model/data-model-invalid.json')) {
    it(`invalid: ${c.note}`, () => {
      assert.throws(() => validateDataModel(c.json), DataModelError);
      assert.equal(isValidDataModel(c.json), false);
    });
  }

  it('names the offending path', () => {
    assert.throws(() => validateDataModel({ a: [{ b: 1.5 }] }), /a\[0\]\.b/);
  });

  it('rejects non-data values', () => {
    assert.throws(() => validateDataModel({ a: undefined }), DataModelError);
    assert.throws(() => validateDataModel({ a: new Date() }), DataModelError);
    assert.throws(() => validateDataModel({ a: 2 ** 53 }), DataModelError);
  });

  it('rejects deep nesting', () => {
    let v: unknown = 1;
    for (let i = 0; i < 200; i++) v = [v];
    assert.throws(() => validateDataModel({ v }), /too deep/);
  });

  it('accepts a blob in data-model form', () => {
    const ref = cidForCbor(new Uint8Array([1]));
    validateDataModel({ img: { $type: 'blob', ref, mimeType: 'image/png', size: 3 } });
    assert.throws(() => validateDataModel({ img: { $type: 'blob', ref, mimeType: 'image/png' } }));
  });
});

describe('jsonToData / dataToJson', () => {
  it('converts $link and $bytes', () => {
    const link = cidForCbor(new Uint8Array([9]));
    const v = jsonToData({ l: { $link: link.$link }, b: { $bytes: 'AQID' } }) as Record<string, unknown>;
    assert.ok(isCid(v.l));
    assert.deepEqual(v.b, new Uint8Array([1, 2, 3]));
    assert.deepEqual(dataToJson(v), { l: { $link: link.$link }, b: { $bytes: 'AQID' } });
  });

  it('emits unpadded base64 and accepts padded input', () => {
    const v = jsonToData({ $bytes: 'AQ==' });
    assert.deepEqual(v, new Uint8Array([1]));
    assert.deepEqual(dataToJson(v), { $bytes: 'AQ' });
  });

  it('rejects malformed $link / $bytes objects', () => {
    assert.throws(() => jsonToData({ $link: 'nope' }), DataModelError);
    assert.throws(() => jsonToData({ $bytes: 'a b' }), DataModelError);
    assert.throws(() => jsonToData({ $bytes: 'AQID', x: 1 }), DataModelError);
    assert.throws(() => jsonToData({ $link: 5 }), DataModelError);
  });
});
