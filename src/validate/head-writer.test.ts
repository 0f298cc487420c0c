import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { waitFor } from '../../test/support/wait.ts';
import { silentLogger } from '../log.ts';
import type { Account, HeadUpdate, MetadataStore } from '../store/metadata-store.ts';
import { HeadWriter } from './head-writer.ts';

/** The part of a store the HeadWriter uses; head writes wait while `hold` is set, and fail while `fail` is. */
function fakeStore() {
  const stored = new Map<number, string>();
  const s = {
    stored,
    calls: 0,
    hold: undefined as Promise<void> | undefined,
    fail: false,
    async updateAccountHeads(updates: readonly HeadUpdate[]): Promise<boolean[]> {
      s.calls++;
      if (s.hold) await s.hold;
      if (s.fail) throw new Error('write failed');
      for (const u of updates) stored.set(u.uid, u.head.rev);
      return updates.map(() => true);
    },
    async resetAccountHead(): Promise<void> {},
  };
  return s;
}

const account = (uid: number): Account => ({ uid, did: `did:plc:${uid}` }) as Account;
const head = (rev: string) => ({ rev, commitCid: 'c', dataCid: 'd' });

describe('HeadWriter.barrier', () => {
  it('resolves at once when nothing waits, and after the write of every head handed over before it', async () => {
    const store = fakeStore();
    const w = new HeadWriter(store as unknown as MetadataStore, silentLogger, () => {});
    await w.barrier();
    let release!: () => void;
    store.hold = new Promise((r) => (release = r));
    w.written(w.stage(account(1), head('a'), false), 1);
    w.schedule();
    let passed = false;
    const barrier = w.barrier().then(() => (passed = true));
    await waitFor(() => store.calls === 1, 'the write started');
    w.written(w.stage(account(2), head('b'), false), 2); // after the barrier: not waited for
    assert.equal(passed, false);
    release();
    await barrier;
    assert.equal(store.stored.get(1), 'a');
    await w.barrier();
    assert.equal(store.stored.get(2), 'b');
  });

  it('retries a failed write in order, keeping the head in the overlay; the barrier waits for it', async () => {
    const store = fakeStore();
    let failures = 2;
    const inner = store.updateAccountHeads;
    store.updateAccountHeads = async (updates) => {
      if (failures > 0) {
        failures--;
        throw new Error('connection reset');
      }
      return inner(updates);
    };
    let failed = 0;
    const w = new HeadWriter(
      store as unknown as MetadataStore,
      silentLogger,
      () => {},
      16_384,
      () => failed++,
    );
    const a = account(1);
    w.written(w.stage(a, head('a'), false), 1);
    w.schedule();
    await waitFor(() => failed === 1, 'the first attempt failed');
    assert.equal(typeof w.failingSince, 'number', 'failing since the first failed attempt');
    assert.equal(w.current(a)?.rev, 'a', 'the head stays in the overlay for the repo next events');
    assert.equal(w.floor(), 1, 'and the log checkpoint stays below it');
    await w.barrier();
    assert.equal(failed, 2);
    assert.equal(store.stored.get(1), 'a');
    assert.equal(w.failingSince, undefined, 'cleared by the write that succeeded');
    assert.equal(w.idle, true);
  });

  it('gives a failing chunk up after three attempts when closing, so that a stop ends', async () => {
    const store = fakeStore();
    store.fail = true;
    const w = new HeadWriter(store as unknown as MetadataStore, silentLogger, () => {});
    w.written(w.stage(account(1), head('a'), false), 1);
    w.close();
    w.schedule();
    await w.barrier();
    assert.equal(store.calls, 3);
    assert.equal(store.stored.size, 0);
    assert.equal(w.idle, true);
  });
});
