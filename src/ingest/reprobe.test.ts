// Re-probe schedule (reprobe.ts) with a fake clock, store and describeServer:
// the doubling, jittered, capped delays; an unreachable host probed again
// later and later; a host that answers revived once; the schedule entry of a
// host that stayed up dropped.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hostRow } from '../../test/support/store-rows.ts';
import { waitFor } from '../../test/support/wait.ts';
import type { SafeFetcher } from '../protocol/identity/safe-fetch.ts';
import type { Host, HostPageOptions } from '../store/metadata-store.ts';
import { HostReprober } from './reprobe.ts';

function host(id: number, status: Host['status']): Host {
  return hostRow(id, { status, cursor: 42, failures: 15, accountCount: 1 });
}

function fakeFetcher(answers: () => boolean): SafeFetcher & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    async getJson(url: string) {
      calls.push(url);
      if (!answers()) throw new Error('connect ECONNREFUSED');
      return { status: 200, headers: {}, url, json: { did: 'did:web:pds.test' } };
    },
    request: () => Promise.reject(new Error('unused')),
    getText: () => Promise.reject(new Error('unused')),
    close() {},
  };
}

describe('HostReprober', () => {
  it('delays double from the base up to the maximum, jittered to between half and all', () => {
    const settings = { baseMs: 1000, maxMs: 8000 };
    const fetcher = fakeFetcher(() => true);
    const store = { listHosts: async () => [] };
    const low = new HostReprober({ store, fetcher, revive: async () => {}, settings, random: () => 0 });
    const high = new HostReprober({ store, fetcher, revive: async () => {}, settings, random: () => 1 });
    assert.deepEqual(
      [0, 1, 2, 3, 4, 10].map((a) => low.delay(a)),
      [500, 1000, 2000, 4000, 4000, 4000],
    );
    assert.deepEqual(
      [0, 1, 2, 3, 4, 10].map((a) => high.delay(a)),
      [1000, 2000, 4000, 8000, 8000, 8000],
    );
  });

  it('probes an offline host later and later, and revives it once it answers', async () => {
    let now = 0;
    let status: Host['status'] = 'offline';
    let up = false;
    const revived: number[] = [];
    const store = {
      listHosts: async (o: HostPageOptions) => (o.status === status ? [host(7, status)] : []),
    };
    const fetcher = fakeFetcher(() => up);
    const r = new HostReprober({
      store,
      fetcher,
      revive: async (id) => {
        revived.push(id);
        status = 'active';
      },
      settings: { baseMs: 1000, maxMs: 4000 },
      now: () => now,
      random: () => 1,
    });
    await r.tick(); // first seen: scheduled, not probed
    assert.equal(fetcher.calls.length, 0);
    assert.equal(r.schedule()[0].nextAt, 1000);
    now = 999;
    await r.tick();
    assert.equal(fetcher.calls.length, 0, 'not before its time');
    now = 1000;
    await r.tick();
    await waitFor(() => r.schedule()[0].lastResult === 'unreachable');
    assert.equal(fetcher.calls[0], 'https://pds7.test/xrpc/com.atproto.server.describeServer');
    assert.deepEqual(
      { attempts: r.schedule()[0].attempts, nextAt: r.schedule()[0].nextAt },
      { attempts: 1, nextAt: 3000 },
    );
    now = 3000;
    await r.tick();
    await waitFor(() => r.schedule()[0].attempts === 2);
    assert.equal(r.schedule()[0].nextAt, 7000, 'capped at the maximum');
    up = true;
    now = 7000;
    await r.tick();
    await waitFor(() => revived.length === 1);
    assert.deepEqual(revived, [7]);
    await waitFor(() => r.schedule()[0]?.lastResult === 'revived');
    // it stays up as long as its next delay: forgotten
    now = 20_000;
    await r.tick();
    assert.deepEqual(r.schedule(), []);
    await r.stop();
  });

  it('does nothing when the maximum is 0', () => {
    const r = new HostReprober({
      store: { listHosts: async () => [host(1, 'offline')] },
      fetcher: fakeFetcher(() => true),
      revive: async () => {},
      settings: { baseMs: 1000, maxMs: 0 },
    });
    assert.equal(r.enabled, false);
  });
});
