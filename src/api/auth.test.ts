import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { AdminAuth } from './auth.ts';

const req = (authorization?: string): IncomingMessage =>
  ({ headers: authorization === undefined ? {} : { authorization } }) as IncomingMessage;
const basic = (user: string, pass: string): string =>
  `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;

describe('AdminAuth', () => {
  const auth = new AdminAuth('s3cret');

  it('accepts bearer and basic (user admin)', () => {
    assert.equal(auth.check(req('Bearer s3cret')), 'ok');
    assert.equal(auth.check(req('bearer s3cret')), 'ok');
    assert.equal(auth.check(req(basic('admin', 's3cret'))), 'ok');
  });

  it('tells missing from invalid', () => {
    assert.equal(auth.check(req()), 'missing');
    assert.equal(auth.check(req('  ')), 'missing');
    for (const h of [
      'Bearer s3cre',
      'Bearer s3cret2',
      'Bearer',
      basic('root', 's3cret'),
      basic('admin', ''),
      'Basic bm9jb2xvbg==',
      'Digest abc',
    ]) {
      assert.equal(auth.check(req(h)), 'invalid', h);
    }
  });

  it('refuses an empty password', () => {
    assert.throws(() => new AdminAuth(''));
  });
});
