// Account reconciliation (reconcile.ts) with a fake clock, store, live state
// and host: the per-host hourly bound on accounts examined, drift repaired
// only after its grace and a getRepoStatus re-check, and hosts that are not
// connected or are held back left alone.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { accountRow, hostRow } from '../../test/support/store-rows.ts';
import type { SafeFetcher } from '../protocol/identity/safe-fetch.ts';
import type { Account, AccountStatus, Host } from '../store/metadata-store.ts';
import type { RepairResult } from '../validate/validator.ts';
import type { HostSnapshot } from './host-control.ts';
import { AccountReconciler, type ReconcileSettings } from './reconcile.ts';

const HOUR = 3_600_000;

function host(id: number): Host {
  return hostRow(id, { accountCount: 50 });
}

function live(hostId: number, connected: boolean, paused = false): HostSnapshot {
  return { hostId, hostname: `pds${hostId}.test`, connected, paused } as HostSnapshot;
}

const did = (i: number) => `did:plc:a${String(i).padStart(4, '0')}`;

function account(i: number, rev: string, upstreamStatus: AccountStatus = 'active'): Account {
  return accountRow(did(i), rev, { uid: i, upstreamStatus });
}

/** A host of `n` repos at rev `r1` serving listRepos pages and getRepoStatus; records what was asked. */
function fakeHost(n: number) {
  const repos = Array.from({ length: n }, (_, i) => ({
    did: did(i),
    rev: 'r1',
    active: true,
    status: undefined as string | undefined,
  }));
  const asked: { method: string; limit?: number }[] = [];
  const fetcher = {
    getJson: async (url: string) => {
      const u = new URL(url);
      const method = u.pathname.split('/').pop() ?? '';
      if (method === 'com.atproto.sync.getRepoStatus') {
        asked.push({ method });
        const r = repos.find((x) => x.did === u.searchParams.get('did'));
        return r ? { status: 200, json: r } : { status: 400, json: { error: 'RepoNotFound' } };
      }
      const limit = Number(u.searchParams.get('limit'));
      asked.push({ method, limit });
      const cursor = u.searchParams.get('cursor');
      const start = cursor ? repos.findIndex((r) => r.did > cursor) : 0;
      const page = repos.slice(start, start + limit);
      const more = start + limit < repos.length;
      return {
        status: 200,
        json: more ? { repos: page, cursor: page[page.length - 1].did } : { repos: page },
      };
    },
  } as unknown as SafeFetcher;
  return { repos, asked, fetcher };
}

function reconciler(opts: {
  fetcher: SafeFetcher;
  accounts: Map<string, Account>;
  snapshots: HostSnapshot[];
  settings: ReconcileSettings;
  now: () => number;
}) {
  const repairs: { did: string; kind: string; status?: AccountStatus }[] = [];
  const r = new AccountReconciler({
    store: {
      listHosts: async () => [host(1)],
      getAccountByDid: async (d: string) => opts.accounts.get(d),
    },
    live: () => opts.snapshots,
    fetcher: opts.fetcher,
    repairs: {
      requestResync: async (d: string): Promise<RepairResult> => {
        repairs.push({ did: d, kind: 'resync' });
        return 'queued';
      },
      applyUpstreamStatus: async (d: string, status: AccountStatus): Promise<RepairResult> => {
        repairs.push({ did: d, kind: 'status', status });
        return 'emitted';
      },
    },
    settings: opts.settings,
    now: opts.now,
  });
  return { r, repairs };
}

describe('AccountReconciler', () => {
  it('examines at most accountsPerHostPerHour accounts of a host per hour', async () => {
    let now = 0;
    const h = fakeHost(50);
    const accounts = new Map(h.repos.map((_, i) => [did(i), account(i, 'r1')]));
    const { r } = reconciler({
      fetcher: h.fetcher,
      accounts,
      snapshots: [live(1, true)],
      settings: { intervalMs: 1000, accountsPerHostPerHour: 12, graceMs: 0 },
      now: () => now,
    });
    const listed = () =>
      h.asked.filter((a) => a.method.endsWith('listRepos')).reduce((s, a) => s + (a.limit ?? 0), 0);
    for (let i = 0; i < 20; i++) {
      await r.tick();
      now += 1000;
    }
    assert.equal(listed(), 12, 'one hour: twelve accounts asked for, whatever the ticks');
    assert.equal(r.report().accountsPerHostPerHour, 12);
    now += HOUR;
    for (let i = 0; i < 5; i++) {
      await r.tick();
      now += 1000;
    }
    assert.equal(listed(), 24, 'the next hour: twelve more');
    // pages go on from where the last stopped
    const limits = h.asked.map((a) => a.limit);
    assert.deepEqual(limits, [12, 12]);
  });

  it('repairs a drift only once it lasted the grace period and the host still says so', async () => {
    let now = 0;
    const h = fakeHost(3);
    const accounts = new Map([
      [did(0), account(0, 'r1')],
      [did(1), account(1, 'r1', 'deactivated')],
      [did(2), account(2, 'r1')],
    ]);
    h.repos[0].rev = 'r2'; // a commit the relay missed
    h.repos[2].active = false; // a missed #account
    h.repos[2].status = 'suspended';
    const { r, repairs } = reconciler({
      fetcher: h.fetcher,
      accounts,
      snapshots: [live(1, true)],
      settings: { intervalMs: 1000, accountsPerHostPerHour: 100, graceMs: 5000 },
      now: () => now,
    });
    await r.tick();
    assert.equal(repairs.length, 0, 'nothing repaired before the grace');
    assert.equal(r.report().hosts[0]?.pendingDrifts, 3);
    // meanwhile the missed commit arrives on the stream: no longer a drift
    accounts.set(did(0), account(0, 'r2'));
    now += 6000;
    await r.tick();
    assert.deepEqual(
      repairs.sort((a, b) => a.did.localeCompare(b.did)),
      [
        { did: did(1), kind: 'status', status: 'active' },
        { did: did(2), kind: 'status', status: 'suspended' },
      ],
    );
    assert.deepEqual(r.report().repairs, { status: 2, resync: 0 });
  });

  it('a host rev newer than the stored head asks for a resync', async () => {
    const h = fakeHost(2);
    h.repos[1].rev = 'r9';
    const { r, repairs } = reconciler({
      fetcher: h.fetcher,
      accounts: new Map([
        [did(0), account(0, 'r1')],
        [did(1), account(1, 'r1')],
      ]),
      snapshots: [live(1, true)],
      settings: { intervalMs: 1000, accountsPerHostPerHour: 100, graceMs: 0 },
      now: () => 0,
    });
    await r.tick();
    assert.deepEqual(repairs, [{ did: did(1), kind: 'resync' }]);
  });

  it('leaves hosts that are not connected or that the relay holds back', async () => {
    const h = fakeHost(2);
    for (const snapshots of [[live(1, false)], [live(1, true, true)], []]) {
      const { r } = reconciler({
        fetcher: h.fetcher,
        accounts: new Map(),
        snapshots,
        settings: { intervalMs: 1000, accountsPerHostPerHour: 100, graceMs: 0 },
        now: () => 0,
      });
      await r.tick();
    }
    assert.equal(h.asked.length, 0);
  });
});
