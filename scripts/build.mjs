#!/usr/bin/env node
// Compiles the relay (src/), the simulated network (sim/, for `atrelay demo`)
// and the command line (bin/) to plain JavaScript in dist/ with tsc
// (tsconfig.build.json), so production runs no TypeScript loader. It is a
// pure transpile (`noCheck`: `npm run typecheck` checks types), so it needs
// only the `typescript` package, no @types, and works after
// `npm ci --omit=dev`.
//
// Run by `npm ci` (`prepare`) and by the `atrelay` launcher before every start;
// it does nothing when dist/ is current. "Current" means dist/.build-hash
// matches a hash of every input file's path and contents (sources and the
// tsconfigs), so an edit, a `git pull` or a branch switch rebuilds, and a
// touched-but-unchanged file does not. The build goes to a staging folder that
// replaces dist/ in one rename: a failed build leaves the old dist/ in place,
// and no deleted source leaves a stale .js behind. Files under a `static/`
// folder (the dashboard's HTML, CSS and browser JavaScript) are copied as they
// are, beside the compiled modules that serve them.
//
//   node scripts/build.mjs [--force] [--quiet]
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const distDir = join(root, 'dist');
const stampFile = join(distDir, '.build-hash');
const inputDirs = ['src', 'sim', 'bin'];
const inputFiles = ['tsconfig.json', 'tsconfig.build.json'];

function walk(dir, out) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    if (e.name === 'node_modules') continue;
    const full = join(dir, e.name);
    if (e.isDirectory()) walk(full, out);
    else if (/\.(ts|mjs)$/.test(e.name) && !e.name.endsWith('.test.ts')) out.push(full);
    else if (isStaticAsset(full)) out.push(full);
  }
  return out;
}

/** A file served as it is (under a `static/` folder), copied to dist/ unchanged. */
function isStaticAsset(path) {
  return relative(root, path).split(sep).includes('static');
}

/** Hash of every build input: what dist/.build-hash must equal for dist/ to be current. */
export function sourceHash() {
  const files = [
    ...inputDirs.flatMap((d) => walk(join(root, d), [])),
    ...inputFiles.map((f) => join(root, f)),
  ];
  files.sort();
  const h = createHash('sha256');
  for (const f of files) {
    h.update(relative(root, f)).update('\0');
    h.update(readFileSync(f)).update('\0');
  }
  return h.digest('hex').slice(0, 32);
}

function readStamp() {
  try {
    return readFileSync(stampFile, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * Builds dist/ unless it is current. Returns 'current', 'built', or 'stale'
 * (dist/ is out of date but typescript is not installed: it runs as it is).
 * Throws when there is no usable dist/ at all.
 */
export function ensureBuilt({ force = false, quiet = false } = {}) {
  const hash = sourceHash();
  if (!force && readStamp() === hash) return 'current';
  let tsc;
  try {
    tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  } catch {
    if (existsSync(join(distDir, 'src', 'main.js'))) {
      console.error(
        '[atrelay] dist/ is older than the sources and typescript is not installed; running it as it is',
      );
      return 'stale';
    }
    throw new Error('dist/ is missing and typescript is not installed: run `npm ci` first');
  }
  const started = Date.now();
  if (!quiet) console.error('[atrelay] building dist/ (tsc -p tsconfig.build.json) ...');
  const staging = join(root, `.dist-staging-${process.pid}`);
  rmSync(staging, { recursive: true, force: true });
  const res = spawnSync(
    process.execPath,
    [tsc, '-p', join(root, 'tsconfig.build.json'), '--outDir', staging],
    {
      cwd: root,
      stdio: ['ignore', 'inherit', 'inherit'],
    },
  );
  if (res.status !== 0) {
    rmSync(staging, { recursive: true, force: true });
    throw new Error(`tsc exited with ${res.status ?? res.signal}`);
  }
  for (const asset of inputDirs.flatMap((d) => walk(join(root, d), [])).filter(isStaticAsset)) {
    const to = join(staging, relative(root, asset));
    mkdirSync(dirname(to), { recursive: true });
    copyFileSync(asset, to);
  }
  // package.json with "type": "module" is at the root; dist/ inherits it.
  writeFileSync(join(staging, '.build-hash'), `${hash}\n`);
  const old = join(root, `.dist-old-${process.pid}`);
  if (existsSync(distDir)) renameSync(distDir, old);
  renameSync(staging, distDir);
  rmSync(old, { recursive: true, force: true });
  if (!quiet) console.error(`[atrelay] built dist/ in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return 'built';
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    ensureBuilt({ force: process.argv.includes('--force'), quiet: process.argv.includes('--quiet') });
  } catch (err) {
    console.error(`[atrelay] build failed: ${err instanceof Error ? err.message : err}`);
    process.exit(1);
  }
}
