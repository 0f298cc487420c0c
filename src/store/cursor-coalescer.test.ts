import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { waitFor } from '../../test/support/wait.ts';
import { CursorCoalescer } from './cursor-coalescer.ts';
import type { CursorUpdate } from './metadata-store.ts';

/** An in-memory sink with the storage rule: a row is written only when the seq is greater. */
function memorySink() {
  const stored = new Map<number, number>();
  const batches: CursorUpdate[][] = [];
  let fail = false;
  let gate: Promise<void> | undefined;
  const sink = async (updates: readonly CursorUpdate[]) => {
    if (gate) await gate;
    if (fail) throw new Error('write failed');
    batches.push([...updates]);
    let written = 0;
    for (const u of updates) {
      if ((stored.get(u.hostId) ?? 0) < u.seq) {
        stored.set(u.hostId, u.seq);
        written++;
      }
    }
    return written;
  };
  return {
    sink,
    stored,
    batches,
    setFail: (f: boolean) => {
      fail = f;
    },
    setGate: (g: Promise<void> | undefined) => {
      gate = g;
    },
  };
}

describe('CursorCoalescer', () => {
  it('turns many updates per host into one row per host in one batch', async () => {
    const m = memorySink();
    const c = new CursorCoalescer({ sink: m.sink, intervalMs: 0 });
    for (let seq = 1; seq <= 10_000; seq++) c.update(seq % 7, seq);
    c.update(3, 1); // lower than pending: ignored
    assert.equal(c.pendingCount, 7);
    assert.equal(c.peek(3), 9999);
    await c.flush();
    assert.equal(m.batches.length, 1);
    assert.equal(m.batches[0].length, 7);
    assert.equal(m.stored.get(3), 9999);
    assert.equal(c.flushes, 1);
    assert.equal(c.rowsWritten, 7);
    await c.flush();
    assert.equal(m.batches.length, 1, 'nothing pending, nothing written');
    await c.close();
  });

  it('keeps updates made during a flush for the next one, visible to peek()', async () => {
    const m = memorySink();
    const c = new CursorCoalescer({ sink: m.sink, intervalMs: 0 });
    let open!: () => void;
    m.setGate(
      new Promise<void>((r) => {
        open = r;
      }),
    );
    c.update(1, 10);
    const first = c.flush();
    c.update(1, 20);
    c.update(2, 5);
    assert.equal(c.peek(1), 20);
    const second = c.flush(); // waits for the first
    open();
    m.setGate(undefined);
    await Promise.all([first, second]);
    assert.deepEqual(m.batches, [
      [{ hostId: 1, seq: 10 }],
      [
        { hostId: 1, seq: 20 },
        { hostId: 2, seq: 5 },
      ],
    ]);
    await c.close();
  });

  it('puts a failed batch back and retries it', async () => {
    const m = memorySink();
    const c = new CursorCoalescer({ sink: m.sink, intervalMs: 0 });
    c.update(1, 10);
    m.setFail(true);
    await assert.rejects(c.flush(), /write failed/);
    c.update(1, 8); // older than the failed batch's value
    assert.equal(c.peek(1), 10);
    m.setFail(false);
    await c.flush();
    assert.equal(m.stored.get(1), 10);
    await c.close();
  });

  it('flushes on its timer and at close, then refuses updates', async () => {
    const m = memorySink();
    const c = new CursorCoalescer({ sink: m.sink, intervalMs: 10 });
    c.update(1, 1);
    await waitFor(() => m.batches.length > 0, 'the timer flush');
    assert.equal(m.stored.get(1), 1);
    c.update(1, 2);
    await c.close();
    assert.equal(m.stored.get(1), 2);
    assert.throws(() => c.update(1, 3), /closed/);
  });

  it('forget() drops a pending value', async () => {
    const m = memorySink();
    const c = new CursorCoalescer({ sink: m.sink, intervalMs: 0 });
    c.update(1, 100);
    c.forget(1);
    assert.equal(c.peek(1), undefined);
    await c.close();
    assert.equal(m.batches.length, 0);
  });

  it('writes a batch only after the write barrier resolves; updates made meanwhile wait for the next batch', async () => {
    const m = memorySink();
    const c = new CursorCoalescer({ sink: m.sink, intervalMs: 0 });
    let open!: () => void;
    let barriers = 0;
    c.setBarrier(() => {
      barriers++;
      return barriers === 1 ? new Promise<void>((r) => (open = r)) : Promise.resolve();
    });
    c.update(1, 10);
    const flushing = c.flush();
    await waitFor(() => c.waitingForBarrier, 'the batch waits for the barrier');
    c.update(1, 20); // after the batch was taken: not in it
    assert.equal(m.batches.length, 0, 'nothing written while the barrier holds');
    assert.equal(c.peek(1), 20);
    open();
    await flushing;
    assert.equal(c.waitingForBarrier, false);
    assert.deepEqual(m.batches, [[{ hostId: 1, seq: 10 }]]);
    await c.close();
    assert.deepEqual(m.batches.at(-1), [{ hostId: 1, seq: 20 }]);
  });
});
