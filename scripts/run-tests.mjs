#!/usr/bin/env node
// Runs every *.test.ts under src/, sim/, interop/ and test/ (the fuzz suite) with Node's built-in test runner.
// Node 20's `--test` does not expand globs or pick up .ts files by itself, so
// this script finds the files and hands them over explicitly. Extra arguments
// are passed through (e.g. `npm test -- --test-name-pattern=cbor`), and a
// path prefix filters the files (e.g. `npm test -- src/protocol`).
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const roots = ['src', 'sim', 'interop', 'test'];
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
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=1', ...passThrough, ...files],
  { stdio: 'inherit', cwd: root },
);
process.exit(result.status ?? 1);
