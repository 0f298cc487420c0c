// The process safety net with a stand-in process and relay: which errors stop
// the relay (and with what status), which only get logged and counted, and
// that the graceful stop is bounded by its time limit.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { waitFor } from '../test/support/wait.ts';
import { silentLogger } from './log.ts';
import {
  EXIT_INVARIANT_BREACH,
  gracefulShutdown,
  InvariantViolation,
  installProcessGuard,
} from './process-guard.ts';

function setup(stop: () => Promise<void> = async () => {}, timeoutMs = 60_000) {
  const proc = new EventEmitter();
  const registry = new Registry();
  const exits: number[] = [];
  let stops = 0;
  const shutdown = gracefulShutdown({
    log: silentLogger,
    stop: () => {
      stops++;
      return stop();
    },
    timeoutMs,
    exit: (code) => exits.push(code),
  });
  const uninstall = installProcessGuard({ log: silentLogger, registry, shutdown, proc });
  const count = async (kind: string): Promise<number> => {
    const m = await registry.getSingleMetric('relay_process_errors_total')?.get();
    return m?.values.find((v) => v.labels.kind === kind)?.value ?? 0;
  };
  return { proc, exits, stops: () => stops, shutdown, uninstall, count };
}

describe('process guard', () => {
  it('an uncaught exception is counted and stops the relay once, exiting 70', async () => {
    const g = setup();
    g.proc.emit('uncaughtException', new Error('boom'), 'uncaughtException');
    g.proc.emit('uncaughtException', new Error('again while stopping'), 'uncaughtException');
    await waitFor(() => g.exits.length === 1, 'exit after the graceful stop');
    assert.deepEqual(g.exits, [EXIT_INVARIANT_BREACH]);
    assert.equal(g.stops(), 1, 'one graceful stop');
    assert.equal(await g.count('uncaught_exception'), 2);
  });

  it('an unhandled rejection is counted and the relay keeps running', async () => {
    const g = setup();
    g.proc.emit('unhandledRejection', new Error('lost'), Promise.resolve());
    g.proc.emit('unhandledRejection', 'not even an Error', Promise.resolve());
    assert.equal(await g.count('unhandled_rejection'), 2);
    assert.equal(g.shutdown.started, false);
    assert.equal(g.stops(), 0);
  });

  it('a rejection carrying an InvariantViolation stops the relay like a breach', async () => {
    const g = setup();
    g.proc.emit('unhandledRejection', new InvariantViolation('seq went backwards'), Promise.resolve());
    await waitFor(() => g.exits.length === 1, 'exit after the graceful stop');
    assert.deepEqual(g.exits, [EXIT_INVARIANT_BREACH]);
    assert.equal(await g.count('unhandled_rejection'), 1);
  });

  it('a stop that hangs is cut off at the time limit; a failing stop still exits non-zero', async () => {
    const hung = setup(() => new Promise<void>(() => {}), 20);
    hung.proc.emit('uncaughtException', new Error('boom'), 'uncaughtException');
    await waitFor(() => hung.exits.length === 1, 'exit at the shutdown time limit');
    assert.deepEqual(hung.exits, [EXIT_INVARIANT_BREACH]);

    const failing = setup(() => Promise.reject(new Error('close failed')));
    failing.shutdown('signal SIGTERM', 0);
    await waitFor(() => failing.exits.length === 1, 'exit after the failed stop');
    assert.deepEqual(failing.exits, [1], 'a clean exit code is not reported after a failed stop');
  });

  it('uninstalls its handlers', () => {
    const g = setup();
    assert.equal(g.proc.listenerCount('uncaughtException'), 1);
    g.uninstall();
    assert.equal(g.proc.listenerCount('uncaughtException'), 0);
    assert.equal(g.proc.listenerCount('unhandledRejection'), 0);
  });
});
