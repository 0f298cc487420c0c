// Dashboard sessions: tokens live until their expiry and no longer, the map
// is bounded (the oldest session goes first), logout revokes, malformed
// tokens are refused without a lookup, and the cookie carries the flags the
// issue asks for (HttpOnly, SameSite=Strict, Max-Age; Secure only over TLS).
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { passwordMatches, readCookie, requestIsHttps, SessionStore, sessionCookie } from './sessions.ts';

const req = (headers: Record<string, string>, encrypted = false): IncomingMessage =>
  ({ headers, socket: { encrypted } }) as unknown as IncomingMessage;

describe('dashboard sessions', () => {
  it('a session is valid until it expires', () => {
    let now = 1000;
    const s = new SessionStore({ ttlMs: 60_000, now: () => now });
    const { token, expiresAt } = s.create();
    assert.equal(expiresAt, 61_000);
    assert.equal(s.valid(token), true);
    now = 60_999;
    assert.equal(s.valid(token), true);
    now = 61_000;
    assert.equal(s.valid(token), false);
    assert.equal(s.size, 0, 'an expired session is forgotten');
  });

  it('holds at most maxSessions, dropping the oldest', () => {
    const s = new SessionStore({ maxSessions: 3 });
    const tokens = [s.create(), s.create(), s.create(), s.create()].map((x) => x.token);
    assert.equal(s.size, 3);
    assert.equal(s.valid(tokens[0]), false);
    for (const t of tokens.slice(1)) assert.equal(s.valid(t), true);
  });

  it('logout revokes; unknown and malformed tokens are refused', () => {
    const s = new SessionStore();
    const { token } = s.create();
    assert.equal(s.valid(`${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`), false);
    assert.equal(s.valid('x'.repeat(5000)), false);
    assert.equal(s.valid(undefined), false);
    s.revoke(token);
    assert.equal(s.valid(token), false);
  });

  it('compares passwords exactly', () => {
    assert.equal(passwordMatches('secret', 'secret'), true);
    assert.equal(passwordMatches('secret', 'secret '), false);
    assert.equal(passwordMatches('secret', ''), false);
  });

  it('cookie flags: HttpOnly, SameSite=Strict, Path=/admin, Max-Age, Secure over TLS only', () => {
    const plain = sessionCookie('tok', 3600, false);
    assert.equal(plain, 'atrelay_admin=tok; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=3600');
    assert.match(sessionCookie('tok', 3600, true), /; Secure$/);
    assert.match(sessionCookie('', 0, false), /Max-Age=0/);
  });

  it('reads the cookie and tells TLS from plain HTTP', () => {
    assert.equal(readCookie(req({ cookie: 'a=1; atrelay_admin=xyz; b=2' }), 'atrelay_admin'), 'xyz');
    assert.equal(readCookie(req({ cookie: 'a=1' }), 'atrelay_admin'), undefined);
    assert.equal(
      readCookie(req({ cookie: `atrelay_admin=x; ${'c'.repeat(9000)}` }), 'atrelay_admin'),
      undefined,
    );
    assert.equal(requestIsHttps(req({})), false);
    assert.equal(requestIsHttps(req({}, true)), true);
    assert.equal(requestIsHttps(req({ 'x-forwarded-proto': 'https' })), true);
    assert.equal(requestIsHttps(req({ 'x-forwarded-proto': 'http, https' })), false);
  });
});
