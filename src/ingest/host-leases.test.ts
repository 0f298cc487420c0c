// Host leases on the machine's NATS (own bucket per test): one owner at a
// time, renewal, expiry after a process stops renewing (its hosts move), the
// balancer's share, and a clean close handing hosts over at once.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { deleteStreams, NATS_URL, uniqueStreamName } from '../../test/support/nats.ts';
import { waitFor } from '../../test/support/wait.ts';
import type { Host } from '../store/metadata-store.ts';
import { HostLeases, type LeaseTargets } from './host-leases.ts';

const buckets: string[] = [];
function bucket(): string {
  const b = uniqueStreamName('tlease');
  buckets.push(b);
  return b;
}
after(() => deleteStreams(buckets.map((b) => `KV_${b}`)));

function targets(hosts: number[], reading: Set<number>): LeaseTargets {
  return {
    listActiveHosts: async () => hosts.map((id) => ({ id, status: 'active' }) as Host),
    adopt: (h) => reading.add(h.id),
    release: async (id) => {
      reading.delete(id);
    },
  };
}

describe('HostLeases', () => {
  it('gives a host to one owner; the other gets it once the first stops renewing', async () => {
    const b = bucket();
    const a = await HostLeases.open({ url: NATS_URL, bucket: b, ttlMs: 1500 });
    const c = await HostLeases.open({ url: NATS_URL, bucket: b, ttlMs: 1500 });
    assert.equal(await a.tryAcquire(1), true);
    assert.equal(await c.tryAcquire(1), false);
    assert.deepEqual(await a.renew(), []);
    await a.close(false); // as if killed: keys left to expire
    await waitFor(() => c.tryAcquire(1), 'host 1 lease expired and taken over', { intervalMs: 100 });
    assert.equal(c.isHeld(1), true);
    await c.close();
  });

  it('balances hosts by share between live owners and hands them over on a clean close', async () => {
    const b = bucket();
    const hosts = [1, 2, 3, 4];
    const a = await HostLeases.open({ url: NATS_URL, bucket: b, ttlMs: 3000 });
    const c = await HostLeases.open({ url: NATS_URL, bucket: b, ttlMs: 3000 });
    const readA = new Set<number>();
    const readC = new Set<number>();
    await a.balance(targets(hosts, readA));
    await c.balance(targets(hosts, readC));
    assert.equal(readA.size, 2);
    assert.equal(readC.size, 2);
    assert.deepEqual([...readA, ...readC].sort(), hosts);
    await a.close();
    await c.balance(targets(hosts, readC));
    assert.equal(readC.size, 4);
    // a lost lease stops the host: someone else took it over
    await c.close(false);
    await deleteStreams([`KV_${b}`]);
  });
});
