// The one way tests wait for asynchronous work: poll a condition until it
// holds. Never wait a fixed time for something to have happened: on a busy
// machine (CI shares two cores) "it is done by now" is false sooner or later.
// The deadline is only a safety net that turns a hang into a failure with a
// name; it is generous on purpose (a loaded machine can be 10x slower), and
// passing it means the condition never became true, not "too slow".
import { setTimeout as sleep } from 'node:timers/promises';

/** Default safety-net deadline; TEST_WAIT_DEADLINE_MS overrides it (e.g. larger under valgrind). */
export const WAIT_DEADLINE_MS = Number(process.env.TEST_WAIT_DEADLINE_MS) || 60_000;

export interface WaitOptions {
  /** Give up after this long (default WAIT_DEADLINE_MS). */
  deadlineMs?: number;
  /** Poll interval (default 10 ms). */
  intervalMs?: number;
  /** Called when the deadline passes; its text is added to the error (e.g. the state seen). */
  describe?: () => string;
}

/**
 * Resolves once `cond` returns true; rejects naming `what` (by default the
 * condition's own source text) if the deadline passes first.
 */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  what: string = conditionText(cond),
  opts: WaitOptions = {},
): Promise<void> {
  const deadline = Date.now() + (opts.deadlineMs ?? WAIT_DEADLINE_MS);
  const interval = opts.intervalMs ?? 10;
  while (!(await cond())) {
    if (Date.now() > deadline) {
      const seen = opts.describe ? `; ${opts.describe()}` : '';
      throw new Error(`timed out waiting for ${what}${seen}`);
    }
    await sleep(interval);
  }
}

function conditionText(cond: () => unknown): string {
  const text = cond.toString().replace(/\s+/g, ' ');
  return text.length > 160 ? `${text.slice(0, 157)}...` : text;
}

/** Lets queued I/O callbacks and timers that are already due run (not a wait for any condition). */
export function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
