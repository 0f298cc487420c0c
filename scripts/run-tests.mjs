#!/usr/bin/env node
// Runs every *.test.ts under src/, sim/, bin/, interop/ and test/ (the fuzz suite, the layout check) with Node's built-in test runner.
// Node 20's `--test` does not expand globs or pick up .ts files by itself, so
// this script finds the files and hands them over explicitly. Extra arguments
// are passed through (e.g. `npm test -- --test-name-pattern=cbor`), and a
// path prefix filters the files (e.g. `npm test -- src/protocol`).
//
// The interop suites need interop/node_modules (Node 22 and Bluesky's
// @atproto packages, see install-interop.mjs). It is not part of `npm ci` —
// users of the relay do not pay for a test-only stack — so when the selection
// includes interop/ tests, this script installs it first, or restores it from
// the local cache, or does nothing when it is in place (a stamp file says so).
// ATRELAY_SKIP_INTEROP=1 skips the install (the interop tests then fail,
// saying what is missing).
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const roots = ['src', 'sim', 'bin', 'interop', 'test'];
const args = process.argv.slice(2);
const filters = args.filter((a) => !a.startsWith('-'));
const passThrough = args.filter((a) => a.startsWith('-'));

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules') continue;
    const full = join(dir, name);
    if (statSync(full).isDirectory()) walk(full, out);
    else if (name.endsWith('.test.ts')) out.push(relative(root, full));
  }
  return out;
}

let files = roots.flatMap((r) => walk(join(root, r), [])).sort();
if (filters.length > 0) files = files.filter((f) => filters.some((p) => f.startsWith(p) || f.includes(p)));
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
if (files.some((f) => f.startsWith('interop/')) && process.env.ATRELAY_SKIP_INTEROP !== '1') {
  const install = spawnSync(process.execPath, [join(root, 'scripts', 'install-interop.mjs')], {
    stdio: 'inherit',
    cwd: root,
  });
  if (install.status !== 0) {
    console.error(
      'installing interop/ failed (ATRELAY_SKIP_INTEROP=1 skips it); the interop tests will fail',
    );
  }
}
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=1', ...passThrough, ...files],
  { stdio: 'inherit', cwd: root },
);
process.exit(result.status ?? 1);
