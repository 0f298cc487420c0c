// The Hosts table on the server: 3,000 hosts searched, sorted and paged in
// one call without the page ever holding more than `limit` rows, live state
// and current rate joined in, and the host list read once per cache period.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Host, HostPageOptions } from '../store/metadata-store.ts';
import { HostsTable } from './hosts-table.ts';

function fakeHosts(n: number): Host[] {
  return Array.from({ length: n }, (_, i) => ({
    id: i + 1,
    hostname: `pds${String(i).padStart(4, '0')}.example.com`,
    tls: true,
    status: i % 100 === 0 ? 'blocked' : 'active',
    cursor: i * 10,
    accountCount: i % 7,
    accountLimit: 0,
    trusted: false,
    failures: 0,
    createdAt: new Date(0),
    updatedAt: new Date(0),
  })) as Host[];
}

describe('hosts table', () => {
  const all = fakeHosts(3000);
  let listCalls = 0;
  const store = {
    listHosts: async (opts: HostPageOptions) => {
      listCalls++;
      const from = all.findIndex((h) => h.id > (opts.after ?? 0));
      return from < 0 ? [] : all.slice(from, from + opts.limit);
    },
  };
  let now = 0;
  const table = new HostsTable({
    store,
    hosts: {
      liveState: (id) =>
        id === 2 ? { connected: true, state: 'open', queued: 3, inFlight: 2, lastError: 'boom' } : undefined,
    },
    rates: () => new Map([['pds0005.example.com', 12.345]]),
    now: () => now,
  });

  it('pages 3,000 hosts from the server', async () => {
    const page = await table.query({ limit: 50 });
    assert.equal(page.total, 3000);
    assert.equal(page.matched, 3000);
    assert.equal(page.rows.length, 50);
    assert.equal(page.rows[0].hostname, 'pds0000.example.com');
    const last = await table.query({ offset: 2990, limit: 50 });
    assert.equal(last.rows.length, 10);
    assert.equal(listCalls, 4, 'read in pages of 1000 (the last one empty), once per cache period');
  });

  it('searches, sorts and joins live state and rate', async () => {
    const blocked = await table.query({ search: 'blocked', limit: 500 });
    assert.equal(blocked.matched, 30);
    const byRate = await table.query({ sort: 'rate', descending: true, limit: 1 });
    assert.equal(byRate.rows[0].hostname, 'pds0005.example.com');
    assert.equal(byRate.rows[0].rate, 12.35);
    const one = await table.query({ search: 'PDS0001.', limit: 5 });
    assert.deepEqual(
      { ...one.rows[0], updatedAt: undefined },
      {
        hostname: 'pds0001.example.com',
        status: 'active',
        connected: true,
        state: 'open',
        accountCount: 1,
        accountLimit: 0,
        trusted: false,
        cursor: 10,
        liveCursor: null,
        backlog: 5,
        rate: 0,
        rateLimits: null,
        rateLimitOverride: null,
        failures: 0,
        lastError: 'boom',
        updatedAt: undefined,
      },
    );
    const byAccounts = await table.query({ sort: 'accountCount', descending: true, limit: 3 });
    assert.deepEqual(
      byAccounts.rows.map((r) => r.accountCount),
      [6, 6, 6],
    );
  });

  it('re-reads after the cache period or invalidate()', async () => {
    const before = listCalls;
    await table.query({});
    assert.equal(listCalls, before);
    now += 5000;
    await table.query({});
    assert.equal(listCalls, before + 4);
    table.invalidate();
    await table.query({});
    assert.equal(listCalls, before + 8);
  });
});
