// Which throttled accounts a limit raise or trust releases (throttle-recovery.ts):
// as many of the oldest as the new limit leaves room for, all of them for a
// trusted host, none whose status changed since the listing, at most maxPerRun.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Account, AccountStatus, PageOptions } from '../store/metadata-store.ts';
import { releaseThrottledAccounts } from './throttle-recovery.ts';

function fakeStore(statuses: AccountStatus[]) {
  const accounts: Account[] = statuses.map((status, i) => ({
    uid: i + 1,
    did: `did:plc:a${i + 1}`,
    hostId: 1,
    status,
    upstreamStatus: 'active',
    head: null,
    createdAt: new Date(0),
  }));
  return {
    accounts,
    async listThrottledAccounts(_hostId: number, o: PageOptions) {
      return accounts.filter((a) => a.status === 'throttled' && a.uid > (o.after ?? 0)).slice(0, o.limit);
    },
    async getAccountByUid(uid: number) {
      return accounts.find((a) => a.uid === uid);
    },
    async setAccountStatus(uid: number, status: AccountStatus) {
      const a = accounts.find((x) => x.uid === uid);
      if (a) a.status = status;
      return a;
    },
  };
}

describe('releaseThrottledAccounts', () => {
  it('releases the oldest throttled accounts the new limit has room for', async () => {
    const store = fakeStore(['active', 'active', 'throttled', 'throttled', 'throttled']);
    const r = await releaseThrottledAccounts(store, { id: 1, accountCount: 5 }, 3);
    assert.deepEqual(r, { released: ['did:plc:a3'], stillThrottled: 2 });
    assert.equal(store.accounts[2].status, 'desynchronized');
    assert.equal(store.accounts[3].status, 'throttled');
  });

  it('releases every one for a trusted host (no limit), at most maxPerRun', async () => {
    const store = fakeStore(['active', 'throttled', 'throttled', 'throttled']);
    const r = await releaseThrottledAccounts(store, { id: 1, accountCount: 4 }, Number.POSITIVE_INFINITY, 2);
    assert.deepEqual(r.released, ['did:plc:a2', 'did:plc:a3']);
    assert.equal(r.stillThrottled, 1);
  });

  it('releases nothing when the limit leaves no room, and never overwrites a changed status', async () => {
    const store = fakeStore(['active', 'active', 'throttled']);
    assert.deepEqual((await releaseThrottledAccounts(store, { id: 1, accountCount: 3 }, 2)).released, []);
    const taken = fakeStore(['active', 'throttled']);
    const real = taken.getAccountByUid.bind(taken);
    // taken down between the listing and the release
    taken.getAccountByUid = async (uid) => ({ ...(await real(uid))!, status: 'takendown' });
    assert.deepEqual((await releaseThrottledAccounts(taken, { id: 1, accountCount: 2 }, 10)).released, []);
    assert.equal(taken.accounts[1].status, 'throttled');
  });
});
