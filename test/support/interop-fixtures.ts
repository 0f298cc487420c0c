// Access to the atproto interop fixtures in ../shared/fixtures/atproto-interop
// (beside the repository, in development and in CI). A missing fixtures
// directory is an error, never a silent skip.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export const FIXTURES_DIR =
  process.env.ATPROTO_FIXTURES_DIR ?? join(repoRoot, '..', 'shared', 'fixtures', 'atproto-interop');

function fixturePath(rel: string): string {
  const p = join(FIXTURES_DIR, rel);
  if (!existsSync(p)) {
    throw new Error(
      `interop fixture missing: ${p} (expected ../shared beside the repository, or set ATPROTO_FIXTURES_DIR)`,
    );
  }
  return p;
}

export function readFixtureJson<T>(rel: string): T {
  return JSON.parse(readFileSync(fixturePath(rel), 'utf8')) as T;
}

/** Lines of a syntax fixture file, without blank lines and `#` comments. */
export function readFixtureLines(rel: string): string[] {
  return readFileSync(fixturePath(rel), 'utf8')
    .split('\n')
    .filter((l) => l.length > 0 && !l.startsWith('#'));
}
