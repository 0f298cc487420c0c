// The shared Scheduler: one timer for every host's delayed work; due order,
// cancellation, stop, and the bound on cancelled jobs left in the heap.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { waitFor } from '../../test/support/wait.ts';
import { Scheduler } from './scheduler.ts';

describe('Scheduler', () => {
  it('runs jobs in due order from one timer', async () => {
    // the four jobs are scheduled from one instant: on a loaded machine the
    // process can be descheduled between two calls for longer than 10 ms
    let frozen: number | undefined = Date.now();
    const s = new Scheduler(() => frozen ?? Date.now());
    const order: number[] = [];
    s.schedule(30, () => order.push(3));
    s.schedule(10, () => order.push(1));
    s.schedule(20, () => order.push(2));
    s.schedule(10, () => order.push(11)); // same due time: FIFO
    frozen = undefined;
    await waitFor(() => order.length === 4, 'all four jobs');
    assert.deepEqual(order, [1, 11, 2, 3]);
    assert.equal(s.size, 0);
    s.stop();
  });

  it('skips cancelled jobs and stop() cancels everything', async () => {
    const s = new Scheduler();
    const ran: string[] = [];
    const a = s.schedule(5, () => ran.push('a'));
    s.schedule(10, () => ran.push('b'));
    a.cancel();
    // jobs run in due order, so 'a' (due first) would have run before 'b'
    await waitFor(() => ran.includes('b'), "job 'b'");
    assert.deepEqual(ran, ['b']);
    s.schedule(5, () => ran.push('c'));
    s.stop();
    s.schedule(1, () => ran.push('d'));
    assert.equal(s.size, 0);
    // Node runs timers in due order: had 'c' or 'd' kept a timer, it would fire before this one
    await sleep(20);
    assert.deepEqual(ran, ['b']);
  });

  it('a job that throws does not stop later jobs', async () => {
    const s = new Scheduler();
    const ran: number[] = [];
    s.schedule(1, () => {
      throw new Error('boom');
    });
    s.schedule(2, () => ran.push(2));
    await waitFor(() => ran.length > 0, 'the job after the throwing one');
    assert.deepEqual(ran, [2]);
    s.stop();
  });

  it('does not keep thousands of cancelled jobs (issue 12: every queue bounded)', async () => {
    const s = new Scheduler();
    const ran: number[] = [];
    s.schedule(5, () => ran.push(1));
    for (let i = 0; i < 5000; i++) s.schedule(5 * 60_000, () => ran.push(2)).cancel();
    assert.ok(s.heapSize <= 1100, `heap of ${s.heapSize}`);
    assert.equal(s.size, 1);
    await waitFor(() => ran.length === 1, 'the live job');
    assert.deepEqual(ran, [1]);
    s.stop();
  });
});
