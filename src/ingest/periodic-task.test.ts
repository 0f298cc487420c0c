// PeriodicTask: one run at a time, failures reported and survived, stop waits for the run in progress.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { waitFor } from '../../test/support/wait.ts';
import { PeriodicTask } from './periodic-task.ts';

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((r) => {
    open = r;
  });
  return { open, opened };
}

describe('PeriodicTask', () => {
  it('shares a run in progress between overlapping ticks, and stop waits for it', async () => {
    const g = gate();
    let runs = 0;
    const task = new PeriodicTask({
      intervalMs: 60_000,
      run: async () => {
        runs++;
        await g.opened;
      },
      onError: () => assert.fail('no error expected'),
    });
    const a = task.tick();
    const b = task.tick();
    assert.equal(a, b);
    assert.equal(runs, 1);
    let stopped = false;
    const stopping = task.stop().then(() => {
      stopped = true;
    });
    await Promise.resolve();
    assert.equal(stopped, false, 'stop waits for the run');
    assert.equal(task.stopped, true);
    g.open();
    await stopping;
    assert.equal(runs, 1);
  });

  it('reports a failed run and runs again on the next tick', async () => {
    const errors: unknown[] = [];
    let runs = 0;
    const task = new PeriodicTask({
      intervalMs: 60_000,
      run: async () => {
        runs++;
        if (runs === 1) throw new Error('boom');
      },
      onError: (err) => errors.push(err),
    });
    await task.tick();
    await task.tick();
    assert.equal(runs, 2);
    assert.equal(errors.length, 1);
    await task.stop();
  });

  it('runs on its interval (and at start when asked), never after stop; an interval ≤ 0 is off', async () => {
    let runs = 0;
    const task = new PeriodicTask({
      intervalMs: 5,
      run: async () => {
        runs++;
      },
      onError: () => {},
      runAtStart: true,
    });
    task.start();
    assert.equal(runs, 1, 'ran at start');
    await waitFor(() => runs >= 3, 'two interval runs');
    await task.stop();
    const after = runs;
    task.start(); // stopped for good
    await new Promise((r) => setImmediate(r));
    assert.equal(runs, after);

    let offRuns = 0;
    const off = new PeriodicTask({
      intervalMs: 0,
      run: async () => {
        offRuns++;
      },
      onError: () => {},
      runAtStart: true,
    });
    off.start();
    assert.equal(offRuns, 0);
    await off.stop();
  });
});
