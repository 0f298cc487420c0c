// Admin authentication: `Authorization: Bearer <password>` or HTTP Basic with
// user `admin` (as indigo's relay and zlay accept). Both sides are hashed with
// SHA-256 before timingSafeEqual, so the comparison takes the same time
// whatever the length or content of the guess and leaks nothing about the
// password through timing.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export type AuthResult = 'ok' | 'missing' | 'invalid';

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

export class AdminAuth {
  private readonly expected: Buffer;

  constructor(password: string) {
    if (password === '') throw new Error('admin password must not be empty');
    this.expected = digest(password);
  }

  check(req: IncomingMessage): AuthResult {
    const header = req.headers.authorization;
    if (header === undefined || header.trim() === '') return 'missing';
    const m = /^(\S+)\s+(.+)$/.exec(header.trim());
    if (!m) return 'invalid';
    const scheme = m[1].toLowerCase();
    let candidate: string | undefined;
    if (scheme === 'bearer') {
      candidate = m[2];
    } else if (scheme === 'basic') {
      const decoded = Buffer.from(m[2], 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0) return 'invalid';
      if (decoded.slice(0, colon) !== 'admin') return 'invalid';
      candidate = decoded.slice(colon + 1);
    } else {
      return 'invalid';
    }
    return timingSafeEqual(digest(candidate), this.expected) ? 'ok' : 'invalid';
  }
}
