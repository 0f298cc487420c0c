// Dashboard login sessions: the admin password is checked once at the login
// form, and the browser then holds a random session token in a cookie
// (HttpOnly, SameSite=Strict, Path=/admin, Max-Age; Secure when the request
// came over TLS). The relay keeps only the SHA-256 of each token, in a map
// bounded in number (the oldest session is dropped when it is full), with an
// absolute expiry, so a flood of logins cannot grow memory and a stolen
// cookie stops working by itself. Password comparison hashes both sides
// before timingSafeEqual, as src/api/auth.ts does for the admin API.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export const SESSION_COOKIE = 'atrelay_admin';

export interface SessionStoreOptions {
  /** Sessions held at once (default 64); a new login past it ends the oldest. */
  maxSessions?: number;
  /** Lifetime of a session from login (default 12 hours). */
  ttlMs?: number;
  now?: () => number;
}

interface Session {
  expiresAt: number;
}

const sha256 = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** True when `candidate` is the password; takes the same time whatever the guess. */
export function passwordMatches(expected: string, candidate: string): boolean {
  return timingSafeEqual(sha256(candidate), sha256(expected));
}

export class SessionStore {
  // Keyed by the token's SHA-256 (hex): the map never holds a usable token.
  private readonly sessions = new Map<string, Session>();
  readonly maxSessions: number;
  readonly ttlMs: number;
  private readonly now: () => number;

  constructor(opts: SessionStoreOptions = {}) {
    this.maxSessions = Math.max(1, opts.maxSessions ?? 64);
    this.ttlMs = opts.ttlMs ?? 12 * 3600_000;
    this.now = opts.now ?? Date.now;
  }

  /** Starts a session; returns its token (only the caller's cookie holds it). */
  create(): { token: string; expiresAt: number } {
    const now = this.now();
    this.sweep(now);
    while (this.sessions.size >= this.maxSessions) {
      const oldest = this.sessions.keys().next().value;
      if (oldest === undefined) break;
      this.sessions.delete(oldest);
    }
    const token = randomBytes(32).toString('base64url');
    const expiresAt = now + this.ttlMs;
    this.sessions.set(sha256(token).toString('hex'), { expiresAt });
    return { token, expiresAt };
  }

  /** True when `token` names a live session. */
  valid(token: string | undefined): boolean {
    if (token === undefined || !/^[A-Za-z0-9_-]{43}$/.test(token)) return false;
    const key = sha256(token).toString('hex');
    const s = this.sessions.get(key);
    if (!s) return false;
    if (s.expiresAt <= this.now()) {
      this.sessions.delete(key);
      return false;
    }
    return true;
  }

  /** Ends a session (logout); unknown tokens are ignored. */
  revoke(token: string | undefined): void {
    if (token !== undefined) this.sessions.delete(sha256(token).toString('hex'));
  }

  get size(): number {
    return this.sessions.size;
  }

  private sweep(now: number): void {
    for (const [k, s] of this.sessions) if (s.expiresAt <= now) this.sessions.delete(k);
  }
}

/** The value of cookie `name` in the request, or undefined (bounded: ignores absurd headers). */
export function readCookie(req: IncomingMessage, name: string): string | undefined {
  const header = req.headers.cookie;
  if (header === undefined || header.length > 8192) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/**
 * True when the browser reached the relay over TLS: the socket is TLS, or a
 * proxy says so in X-Forwarded-Proto. A client that lies about the header
 * only makes its own cookie stricter (Secure), so it need not be trusted.
 */
export function requestIsHttps(req: IncomingMessage): boolean {
  if ((req.socket as { encrypted?: boolean }).encrypted) return true;
  const proto = req.headers['x-forwarded-proto'];
  const first = (Array.isArray(proto) ? proto[0] : proto)?.split(',', 1)[0].trim().toLowerCase();
  return first === 'https';
}

/** The Set-Cookie value for a new session (or, with token '' and maxAgeSeconds 0, one that clears it). */
export function sessionCookie(token: string, maxAgeSeconds: number, secure: boolean): string {
  return [
    `${SESSION_COOKIE}=${token}`,
    'Path=/admin',
    'HttpOnly',
    'SameSite=Strict',
    `Max-Age=${Math.max(0, Math.floor(maxAgeSeconds))}`,
    ...(secure ? ['Secure'] : []),
  ].join('; ');
}
