// `atrelay admin` against a real relay (in-process, loopback, simulated
// hosts): each command reaches its admin route and prints what it answered;
// refusals and a wrong password exit 1 with the API's error, usage errors 2.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SimNetwork } from '../../sim/network.ts';
import { startTestRelay, TEST_ADMIN_PASSWORD } from '../../test/support/relay-harness.ts';
import { tempDir } from '../../test/support/temp.ts';
import { waitFor } from '../../test/support/wait.ts';
import { createSafeFetcher } from '../protocol/identity/safe-fetch.ts';
import type { Relay } from '../relay.ts';
import { ADMIN_USAGE, runAdminCli } from './admin-client.ts';

describe('atrelay admin', () => {
  let net: SimNetwork;
  let relay: Relay;
  let dataDir: string;
  const fetcher = createSafeFetcher({ allowPrivate: true, allowInsecure: true });

  before(async () => {
    dataDir = tempDir('atrelay-admin-cli-');
    net = await SimNetwork.start({ hosts: 2, accountsPerHost: 2, seed: 7 });
    relay = await startTestRelay(net, dataDir);
  });
  after(async () => {
    await relay.stop();
    await net.stop();
    fetcher.close();
  });

  async function admin(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const code = await runAdminCli(argv, {
      fetcher,
      out: (s) => {
        out += s;
      },
      err: (s) => {
        err += s;
      },
      env: { RELAY_ADMIN_URL: `http://127.0.0.1:${relay.port}`, RELAY_ADMIN_PASSWORD: TEST_ADMIN_PASSWORD },
    });
    return { code, out, err };
  }

  it('adds, lists, blocks, unblocks a host and resets its cursor', async () => {
    const [h0, h1] = net.hosts;
    let r = await admin('host', 'add', h0.hostname);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, new RegExp(`^added ${h0.hostname}: status=active`));
    assert.equal((await admin('host', 'add', h1.hostname)).code, 0);
    await waitFor(
      () => (relay.hosts?.list() ?? []).filter((h) => h.connected).length === 2,
      'both connected',
    );

    r = await admin('host', 'list');
    assert.equal(r.code, 0, r.err);
    const lines = r.out.trim().split('\n');
    assert.match(lines[0], /^HOSTNAME\s+STATUS\s+CURSOR\s+ACCOUNTS\s+CONNECTED$/);
    assert.equal(lines.length, 3);
    assert.ok(lines.some((l) => l.startsWith(h0.hostname) && /\bactive\b/.test(l)));

    r = await admin('host', 'list', '--json');
    const json = JSON.parse(r.out) as { hosts: { hostname: string }[] };
    assert.deepEqual(json.hosts.map((h) => h.hostname).sort(), [h0.hostname, h1.hostname].sort());

    r = await admin('host', 'block', h1.hostname);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /status=blocked/);
    r = await admin('host', 'reset-cursor', h1.hostname, '3');
    assert.equal(r.code, 1, 'a blocked host cursor cannot be reset');
    assert.match(r.err, /HTTP 409 HostBlocked/);
    r = await admin('host', 'unblock', h1.hostname);
    assert.match(r.out, /status=active/);

    net.step(4);
    r = await admin('host', 'reset-cursor', h0.hostname, '1');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /cursor reset for .*status=active cursor=1/);
    r = await admin('host', 'reset-cursor', h0.hostname);
    assert.match(r.out, /cursor=none/);

    r = await admin('host', 'get', h0.hostname);
    assert.equal((JSON.parse(r.out) as { hostname: string }).hostname, h0.hostname);
  });

  it('takes a repo down and back', async () => {
    const did = net.accounts[0].did;
    let r = await admin('takedown', did, '--reason', 'spam');
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, `taken down: ${did}\n`);
    r = await admin('repo', 'get', did);
    assert.equal(r.code, 0, r.err);
    assert.equal((JSON.parse(r.out) as { takenDown?: unknown }).takenDown, true);
    r = await admin('reverse-takedown', did);
    assert.equal(r.out, `takedown reversed: ${did}\n`);
    r = await admin('reverse-takedown', did);
    assert.equal(r.code, 1);
    assert.match(r.err, /HTTP 404 NotFound/);
  });

  it('reports a wrong password, usage errors and an unreachable relay', async () => {
    let r = await admin('host', 'list', '--token', 'wrong');
    assert.equal(r.code, 1);
    assert.match(r.err, /HTTP 401 InvalidCredentials.*--token/);
    r = await admin('host', 'fly');
    assert.equal(r.code, 2);
    assert.match(r.err, /unknown host command "fly"/);
    assert.ok(r.err.includes(ADMIN_USAGE));
    r = await admin('host', 'reset-cursor', 'x.example', '-5');
    assert.equal(r.code, 2);
    r = await admin('takedown');
    assert.match(r.err, /missing DID/);
    r = await admin('--help');
    assert.equal(r.code, 0);
    assert.equal(r.out, `${ADMIN_USAGE}\n`);
    // a port nothing listens on: the relay's own port, closed after a stop, is not reusable here; use port 1
    r = await admin('host', 'list', '--admin', 'http://127.0.0.1:1');
    assert.equal(r.code, 1);
    assert.match(r.err, /is the relay at http:\/\/127\.0\.0\.1:1\?/);
  });
});
