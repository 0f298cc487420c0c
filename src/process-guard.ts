// The process's safety net (used by src/main.ts): what happens when an error
// escapes every handler, and the one graceful-shutdown path that signals,
// failed starts and invariant breaches share.
//
// Policy:
// - `uncaughtException` is an invariant breach: code threw where nothing
//   expected it, so synchronous state may be half-updated and carrying on
//   would mean limping with it. It is logged (fatal) and counted, then the
//   relay stops gracefully within RELAY_SHUTDOWN_TIMEOUT_MS and the process
//   exits with status 70 (EX_SOFTWARE) so a supervisor restarts it.
// - `unhandledRejection` is logged (error) and counted, and the relay keeps
//   running: a promise nobody awaited lost its result, but no synchronous
//   state was left half-done, and exiting would let whatever input caused it
//   restart the relay at will. Alert on the counter. The exception: a
//   rejection carrying an InvariantViolation is a breach like the above.
// - Code that detects a broken invariant throws InvariantViolation.
// Both kinds are counted in relay_process_errors_total{kind}.
import type { EventEmitter } from 'node:events';
import { Counter, type Registry } from 'prom-client';
import type { Logger } from './log.ts';

/** Exit status after an invariant breach (sysexits EX_SOFTWARE). */
export const EXIT_INVARIANT_BREACH = 70;
/** Exit status when storage gave up (the event log cannot write; sysexits EX_IOERR). */
export const EXIT_STORAGE_FAILURE = 74;

/** Thrown where the relay finds its own state inconsistent: the process stops cleanly rather than limp on. */
export class InvariantViolation extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvariantViolation';
  }
}

export interface ShutdownOptions {
  log: Logger;
  /** The graceful stop (Relay.stop). */
  stop: () => Promise<void>;
  /** How long the stop may take before the process exits anyway. */
  timeoutMs: number;
  exit: (code: number) => void;
}

export interface Shutdown {
  /** Starts the graceful stop, then exits with `exitCode`; later calls are ignored. */
  (reason: string, exitCode: number): void;
  /** True once a shutdown has begun. */
  readonly started: boolean;
}

export function gracefulShutdown(opts: ShutdownOptions): Shutdown {
  let started = false;
  const shutdown = (reason: string, exitCode: number): void => {
    if (started) {
      opts.log.warn({ reason }, 'already shutting down');
      return;
    }
    started = true;
    opts.log.info({ reason, exitCode }, 'shutting down');
    const timer = setTimeout(() => {
      opts.log.error({ timeoutMs: opts.timeoutMs }, 'graceful shutdown timed out');
      opts.exit(exitCode === 0 ? 1 : exitCode);
    }, opts.timeoutMs);
    timer.unref();
    opts.stop().then(
      () => {
        clearTimeout(timer);
        opts.exit(exitCode);
      },
      (err: unknown) => {
        clearTimeout(timer);
        opts.log.error({ err }, 'error during shutdown');
        opts.exit(exitCode === 0 ? 1 : exitCode);
      },
    );
  };
  Object.defineProperty(shutdown, 'started', { get: () => started });
  return shutdown as Shutdown;
}

export interface ProcessGuardOptions {
  log: Logger;
  registry: Registry;
  shutdown: Shutdown;
  /** The process to guard (default: `process`). */
  proc?: EventEmitter;
}

/** Installs the uncaughtException / unhandledRejection handlers; returns a function that removes them. */
export function installProcessGuard(opts: ProcessGuardOptions): () => void {
  const proc = opts.proc ?? process;
  const errors = new Counter({
    name: 'relay_process_errors_total',
    help: 'Errors that escaped every handler: uncaught_exception (the relay then stops and exits 70) or unhandled_rejection (logged, the relay keeps running)',
    labelNames: ['kind'],
    registers: [opts.registry],
  });
  const onException = (err: unknown, origin?: string): void => {
    errors.inc({ kind: 'uncaught_exception' });
    opts.log.fatal({ err, origin }, 'uncaught exception: invariant breach, stopping');
    opts.shutdown('uncaught exception', EXIT_INVARIANT_BREACH);
  };
  const onRejection = (reason: unknown): void => {
    errors.inc({ kind: 'unhandled_rejection' });
    if (reason instanceof InvariantViolation) {
      opts.log.fatal({ err: reason }, 'invariant violation in a promise, stopping');
      opts.shutdown('invariant violation', EXIT_INVARIANT_BREACH);
      return;
    }
    opts.log.error({ err: reason }, 'unhandled promise rejection (relay keeps running)');
  };
  proc.on('uncaughtException', onException);
  proc.on('unhandledRejection', onRejection);
  return () => {
    proc.off('uncaughtException', onException);
    proc.off('unhandledRejection', onRejection);
  };
}
