// The `atrelay` command line as a user runs it (child processes): help for
// each command, unknown commands refused, and the demo — through the real
// launcher, bin/atrelay.mjs, so from the compiled build in dist/ (built here
// if stale), worker threads included — starting a network and a relay and
// printing events it relayed. Waits are on output, never on time.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../test/support/wait.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'bin/cli.ts', ...args], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, RELAY_ADMIN_PASSWORD: '' },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('atrelay command line', () => {
  it('prints help for itself and for every command', () => {
    const top = cli('--help');
    assert.equal(top.status, 0, top.stderr);
    for (const c of ['serve', 'backfill', 'admin', 'demo'])
      assert.match(top.stdout, new RegExp(`^  ${c}\\b`, 'm'));
    assert.equal(cli('help').stdout, top.stdout);

    const serve = cli('serve', '--help');
    assert.equal(serve.status, 0, serve.stderr);
    assert.match(serve.stdout, /Usage: atrelay serve/);
    assert.match(serve.stdout, /RELAY_LOG_LEVEL/);
    assert.equal(cli('--port', '1', '--help').stdout, serve.stdout, 'flags first: serve');

    assert.match(cli('admin', '--help').stdout, /host reset-cursor HOSTNAME \[SEQ\]/);
    assert.match(cli('help', 'admin').stdout, /takedown DID/);
    assert.match(cli('demo', '--help').stdout, /usage: atrelay demo/);
    assert.match(cli('backfill', '--help').stdout, /usage: atrelay backfill/);
    assert.match(cli('--version').stdout, /^\d+\.\d+\.\d+\n$/);
  });

  it('refuses an unknown command and bad options with status 2', () => {
    const r = cli('frobnicate');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown command "frobnicate"/);
    assert.equal(cli('demo', '--hosts', 'many').status, 2);
    assert.equal(cli('admin').status, 2);
    const serve = cli('serve', '--no-such-flag');
    assert.equal(serve.status, 2);
    assert.match(serve.stderr, /--no-such-flag/);
  });

  it('demo (compiled build): starts a network and a relay and shows events flowing', async () => {
    const child: ChildProcess = spawn(
      process.execPath,
      ['bin/atrelay.mjs', 'demo', '--port', '0', '--hosts', '2', '--accounts', '6', '--rate', '20'],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ATRELAY_BUILD_QUIET: '1' } },
    );
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const exited = once(child, 'exit');
    try {
      await waitFor(() => /^events [1-9]\d*/m.test(out) || child.exitCode !== null, 'demo prints events', {
        deadlineMs: 180_000,
        describe: () => `stdout:\n${out}\nstderr:\n${err}`,
      });
      assert.equal(child.exitCode, null, `demo exited early:\n${out}\n${err}`);
      assert.match(out, /firehose +ws:\/\/127\.0\.0\.1:\d+\/xrpc\/com\.atproto\.sync\.subscribeRepos/);
      assert.match(out, /XRPC +http:\/\/127\.0\.0\.1:\d+\/xrpc\//);
      assert.match(out, /events \d+ .*#commit \d+/);
    } finally {
      if (child.exitCode === null) child.kill('SIGINT');
      const [code] = await exited;
      assert.equal(code, 0, `demo exit status\n${err}`);
    }
  });
});
