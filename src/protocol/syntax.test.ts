import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FIXTURES_DIR, readFixtureLines } from '../../test/support/interop-fixtures.ts';
import {
  ensureValidAtIdentifier,
  ensureValidAtUri,
  ensureValidDatetime,
  ensureValidDid,
  ensureValidHandle,
  ensureValidLanguage,
  ensureValidNsid,
  ensureValidRecordKey,
  ensureValidTid,
  ensureValidUri,
  InvalidSyntaxError,
  isDatetimeSyntax,
  isValidAtIdentifier,
  isValidAtUri,
  isValidDatetime,
  isValidDid,
  isValidHandle,
  isValidLanguage,
  isValidLanguageStrict,
  isValidNsid,
  isValidRecordKey,
  isValidTid,
  isValidUri,
  normalizeAndEnsureValidHandle,
  normalizeHandle,
  parseAtUri,
  parseDatetime,
} from './syntax.ts';

type Validator = { isValid: (s: unknown) => boolean; ensure: (s: unknown) => void };

// Fixture prefix -> the validator its *_syntax_valid / *_syntax_invalid files drive.
const validators: Record<string, Validator> = {
  atidentifier: { isValid: isValidAtIdentifier, ensure: ensureValidAtIdentifier },
  aturi: { isValid: isValidAtUri, ensure: ensureValidAtUri },
  datetime: { isValid: isValidDatetime, ensure: ensureValidDatetime },
  did: { isValid: isValidDid, ensure: ensureValidDid },
  handle: { isValid: isValidHandle, ensure: ensureValidHandle },
  language: { isValid: isValidLanguage, ensure: ensureValidLanguage },
  nsid: { isValid: isValidNsid, ensure: ensureValidNsid },
  recordkey: { isValid: isValidRecordKey, ensure: ensureValidRecordKey },
  tid: { isValid: isValidTid, ensure: ensureValidTid },
  uri: { isValid: isValidUri, ensure: ensureValidUri },
};

// CIDs are covered by cid.test.ts; the two *_parse_invalid files have their own tests below.
const coveredElsewhere = new Set(['cid_syntax_valid.txt', 'cid_syntax_invalid.txt']);
const parseInvalidFiles = new Set(['datetime_parse_invalid.txt', 'language_parse_invalid.txt']);

function show(s: string): string {
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…(${s.length} chars)` : s);
}

describe('syntax fixtures', () => {
  const files = readdirSync(join(FIXTURES_DIR, 'syntax')).filter((f) => f.endsWith('.txt'));

  it('every fixture file is driven by a test', () => {
    for (const file of files) {
      const m = /^([a-z]+)_syntax_(valid|invalid)\.txt$/.exec(file);
      const handled = coveredElsewhere.has(file) || parseInvalidFiles.has(file) || (m && m[1] in validators);
      assert.ok(handled, `no test for fixture ${file}`);
    }
  });

  for (const file of files) {
    const m = /^([a-z]+)_syntax_(valid|invalid)\.txt$/.exec(file);
    if (!m || !(m[1] in validators)) continue;
    const [, format, kind] = m;
    const v = validators[format];
    it(file, () => {
      const lines = readFixtureLines(`syntax/${file}`);
      assert.ok(lines.length > 0);
      for (const line of lines) {
        if (kind === 'valid') {
          assert.equal(v.isValid(line), true, `${format} should be valid: ${show(line)}`);
          v.ensure(line);
        } else {
          assert.equal(v.isValid(line), false, `${format} should be invalid: ${show(line)}`);
          assert.throws(() => v.ensure(line), InvalidSyntaxError);
        }
      }
    });
  }

  it('datetime_parse_invalid.txt: well-formed, but isValidDatetime refuses it', () => {
    const lines = readFixtureLines('syntax/datetime_parse_invalid.txt');
    assert.ok(lines.length >= 7);
    for (const line of lines) {
      assert.equal(isDatetimeSyntax(line), true, show(line));
      assert.equal(isValidDatetime(line), false, show(line));
      assert.throws(() => parseDatetime(line), InvalidSyntaxError);
    }
    for (const line of readFixtureLines('syntax/datetime_syntax_invalid.txt')) {
      assert.equal(isDatetimeSyntax(line), false, show(line));
    }
    for (const line of readFixtureLines('syntax/datetime_syntax_valid.txt')) {
      assert.equal(isDatetimeSyntax(line), true, show(line));
    }
  });

  it('language_parse_invalid.txt: well-formed (isValidLanguage), not strictly valid', () => {
    const lines = readFixtureLines('syntax/language_parse_invalid.txt');
    assert.ok(lines.length >= 4);
    for (const line of lines) {
      assert.equal(isValidLanguage(line), true, show(line));
      assert.equal(isValidLanguageStrict(line), false, show(line));
    }
    for (const line of readFixtureLines('syntax/language_syntax_valid.txt')) {
      assert.equal(isValidLanguageStrict(line), true, show(line));
    }
    for (const line of readFixtureLines('syntax/language_syntax_invalid.txt')) {
      assert.equal(isValidLanguageStrict(line), false, show(line));
    }
  });
});

describe('syntax helpers', () => {
  it('non-strings are invalid, never throw from isValid*', () => {
    for (const v of Object.values(validators)) {
      for (const bad of [undefined, null, 42, {}, ['did:plc:abc']]) {
        assert.equal(v.isValid(bad), false);
        assert.throws(() => v.ensure(bad), InvalidSyntaxError);
      }
    }
  });

  it('errors say what and why', () => {
    assert.throws(
      () => ensureValidDid('did:Plc:abc'),
      (e: unknown) => e instanceof InvalidSyntaxError && e.format === 'DID' && /lower-case/.test(e.message),
    );
    assert.throws(() => ensureValidHandle('john'), /at least two labels/);
    assert.throws(() => ensureValidNsid('com.example.fooBar.2'), /name segment/);
    assert.throws(() => ensureValidRecordKey('..'), /"\." or "\.\."/);
    assert.throws(() => ensureValidDatetime('1985-02-29T00:00:00Z'), /day out of range/);
    assert.throws(() => ensureValidAtUri('at://did:plc:asdf123/'), /collection/);
  });

  it('normalizes handles to lower case', () => {
    assert.equal(normalizeHandle('XX.LCS.MIT.EDU'), 'xx.lcs.mit.edu');
    assert.equal(normalizeAndEnsureValidHandle('John.Test'), 'john.test');
    assert.throws(() => normalizeAndEnsureValidHandle('john'), InvalidSyntaxError);
  });

  it('parses AT URIs into parts', () => {
    assert.deepEqual(parseAtUri('at://did:plc:asdf123/app.bsky.feed.post/3jzfcijpj2z2a'), {
      authority: 'did:plc:asdf123',
      collection: 'app.bsky.feed.post',
      rkey: '3jzfcijpj2z2a',
    });
    assert.deepEqual(parseAtUri('at://user.bsky.social'), {
      authority: 'user.bsky.social',
      collection: undefined,
      rkey: undefined,
    });
    assert.throws(() => parseAtUri('at://did:plc:asdf123/app.bsky.feed.post/x/y'), InvalidSyntaxError);
  });

  it('parses datetimes to epoch milliseconds, applying the offset', () => {
    assert.equal(parseDatetime('1985-04-12T23:20:50.123Z'), Date.parse('1985-04-12T23:20:50.123Z'));
    assert.equal(parseDatetime('1985-04-12T23:20:50.1239Z'), Date.parse('1985-04-12T23:20:50.123Z'));
    assert.equal(parseDatetime('1985-04-12T23:20:50.1Z'), Date.parse('1985-04-12T23:20:50.100Z'));
    assert.equal(parseDatetime('1985-04-12T23:20:50.123-07:00'), Date.parse('1985-04-13T06:20:50.123Z'));
    assert.equal(parseDatetime('0000-01-01T00:00:00.000Z'), Date.parse('0000-01-01T00:00:00.000Z'));
    assert.equal(parseDatetime('2024-02-29T12:00:00+01:45'), Date.parse('2024-02-29T10:15:00Z'));
    assert.equal(isValidDatetime('2023-02-29T12:00:00Z'), false);
    assert.equal(isValidDatetime('2000-02-29T12:00:00Z'), true);
    assert.equal(isValidDatetime('1900-02-29T12:00:00Z'), false);
    assert.equal(isValidDatetime('9999-12-31T23:59:59.999Z'), true);
    assert.equal(isValidDatetime('9999-12-31T23:59:59-01:00'), false);
    assert.equal(isValidDatetime('1985-04-12T23:59:60Z'), false);
    assert.equal(isValidDatetime(`1985-04-12T23:20:50.${'1'.repeat(50)}Z`), false); // > 64 chars
  });
});
