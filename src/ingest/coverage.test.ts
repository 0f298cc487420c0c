// Coverage monitor (coverage.ts) with a fake clock, store, live state and
// listRepos: the account-weighted figure, a host behind once disconnected
// past the period, sampled writes missing past it, the stall watchdog's one
// reconnect per period, and the readiness reason.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { accountRow, hostRow } from '../../test/support/store-rows.ts';
import { waitFor } from '../../test/support/wait.ts';
import type { SafeFetcher } from '../protocol/identity/safe-fetch.ts';
import type { Account, Host } from '../store/metadata-store.ts';
import { CoverageMonitor } from './coverage.ts';
import type { HostSnapshot } from './host-control.ts';

function host(id: number, accountCount: number): Host {
  return hostRow(id, { accountCount });
}

function live(hostId: number, connected: boolean, lastEventAt: number): HostSnapshot {
  const limits = { perSecond: 1, perHour: 1, perDay: 1 };
  return {
    hostId,
    hostname: `pds${hostId}.test`,
    state: connected ? 'open' : 'waiting',
    connected,
    cursor: 5,
    failures: 0,
    inFlight: 0,
    queued: 0,
    paused: false,
    rateLimits: limits,
    defaultRateLimits: limits,
    seenSeq: 5,
    lastEventAt,
    eventsSeen: 5,
  } as HostSnapshot;
}

function account(did: string, hostId: number, rev: string): Account {
  return accountRow(did, rev, { hostId });
}

describe('CoverageMonitor', () => {
  it('weights current hosts by accounts; a host disconnected past the period is behind', async () => {
    let now = 1000;
    const snapshots = [live(1, true, 1000), live(2, true, 1000)];
    const m = new CoverageMonitor({
      store: { listHosts: async () => [host(1, 3), host(2, 1)], getAccountByDid: async () => undefined },
      live: () => snapshots,
      fetcher: {} as SafeFetcher,
      reconnect: async () => {},
      settings: { currentWithinMs: 500, sampleIntervalMs: 0, sampleRepos: 10, readyThreshold: 0.8 },
      now: () => now,
    });
    assert.equal(m.notReadyReason(), undefined, 'nothing said before the first evaluation');
    await m.tick();
    assert.equal(m.report().coverage, 1);
    snapshots[0] = live(1, false, 1000);
    now = 1400;
    await m.tick();
    assert.equal(m.report().coverage, 1, 'a short disconnect is not an outage');
    now = 1500;
    await m.tick();
    assert.equal(m.report().coverage, 0.25);
    assert.deepEqual(m.report().hosts, { carried: 2, current: 1 });
    assert.equal(m.report().behind[0].hostname, 'pds1.test');
    assert.equal(m.report().behind[0].disconnectedForMs, 500);
    assert.match(m.notReadyReason() ?? '', /coverage 0\.250 below 0\.8 \(1 of 2 hosts current\)/);
  });

  it('a write sampled but missing past the period makes the host behind, and a silent one is reconnected once', async () => {
    let now = 10_000;
    let ourRev = 'aaa';
    let paused = false;
    const reconnects: number[] = [];
    const urls: string[] = [];
    const fetcher = {
      async getJson(url: string) {
        urls.push(url);
        return {
          status: 200,
          headers: {},
          url,
          json: {
            repos: [
              { did: 'did:plc:a', rev: 'bbb', head: 'x', active: true },
              { did: 'did:plc:unknown', rev: 'zzz', head: 'x', active: true },
              { did: 'did:plc:gone', rev: 'zzz', head: 'x', active: false },
            ],
          },
        };
      },
    } as unknown as SafeFetcher;
    const m = new CoverageMonitor({
      store: {
        listHosts: async () => [host(1, 1)],
        getAccountByDid: async (did) => (did === 'did:plc:a' ? account(did, 1, ourRev) : undefined),
      },
      live: () => [{ ...live(1, true, 10_000), paused }],
      fetcher,
      reconnect: async (id) => {
        reconnects.push(id);
      },
      settings: { currentWithinMs: 1000, sampleIntervalMs: 100, sampleRepos: 50, readyThreshold: 0 },
      now: () => now,
    });
    await m.tick();
    await waitFor(() => m.report().at !== null && urls.length === 1);
    assert.equal(urls[0], 'https://pds1.test/xrpc/com.atproto.sync.listRepos?limit=50');
    now = 10_100;
    await m.tick(); // sees the sample's result: one repo missing since 10,000
    assert.equal(m.report().coverage, 1, 'missing for less than the period');
    now = 11_000;
    paused = true;
    await m.tick();
    assert.equal(m.report().coverage, 0);
    assert.deepEqual(reconnects, [], 'no stall declared while the relay holds the host back');
    paused = false;
    await m.tick();
    assert.equal(m.report().behind[0].missingRepos, 1, 'unknown and inactive repos are not counted');
    assert.equal(m.report().behind[0].missingForMs, 1000);
    assert.deepEqual(reconnects, [1], 'silent for the period with a write missing: reconnected');
    now = 11_500;
    await m.tick();
    assert.deepEqual(reconnects, [1], 'at most once per period');
    // the reconnect brought the write
    ourRev = 'bbb';
    now = 11_600;
    await waitFor(async () => {
      await m.tick();
      return m.report().coverage === 1;
    });
    assert.equal(m.report().behind.length, 0);
    await m.stop();
  });
});
