// The Validator end to end under mutated frames (issue 12): a real
// Validator (test/support/validator-harness.ts: simulated network on loopback,
// SQLite store, file event log) is fed the frames of two simulated accounts
// interleaved with mutated copies of them, as a hostile host would send.
// What must hold: submit() never throws, every submit settles (resolves: the
// store and log are healthy, so a rejection is a bug), every frame is
// counted exactly once as passed or dropped, the validator goes idle, and a
// well-behaved account's next event still passes afterwards. DIDs the
// simulated PLC does not know are answered "not found" by a wrapper, so a
// mutated did:web never leaves the machine (tests stay off the network).

import { Prng } from '../../sim/prng.ts';
import { checkFrame } from '../../src/ingest/frame-check.ts';
import type { InboundFrame } from '../../src/ingest/frame-sink.ts';
import { DidNotFoundError } from '../../src/protocol/identity/did-resolver.ts';
import type { IdentitySource } from '../../src/validate/validator.ts';
import { startHarness } from '../support/validator-harness.ts';
import { waitFor } from '../support/wait.ts';
import { mutate } from './mutate.ts';

export interface ValidatorFuzzOptions {
  seed: string;
  /** Mutated frames to submit. */
  count: number;
  /** Mutated frames submitted at once before waiting for them (default 25). */
  batch?: number;
}

export interface ValidatorFuzzStats {
  mutated: number;
  /** Valid frames from the simulated host submitted between the batches. */
  valid: number;
  passed: number;
  dropped: number;
  dropReasons: Record<string, number>;
  /** Problems found: each names the seed and input index. */
  failures: string[];
}

const sum = (m: ReadonlyMap<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);

export async function fuzzValidator(opts: ValidatorFuzzOptions): Promise<ValidatorFuzzStats> {
  const known = new Set<string>();
  const h = await startHarness({
    net: { hosts: 1, accountsPerHost: 0, seed: `fuzz-validator:${opts.seed}` },
    wrapIdentity: (inner): IdentitySource => ({
      get: (did) => inner.get(did),
      resolve: (did, o) =>
        known.has(did) ? inner.resolve(did, o) : Promise.reject(new DidNotFoundError(did, false)),
      purge: (did) => inner.purge(did),
    }),
  });
  const stats: ValidatorFuzzStats = {
    mutated: 0,
    valid: 0,
    passed: 0,
    dropped: 0,
    dropReasons: {},
    failures: [],
  };
  try {
    const host = h.net.hosts[0];
    const dids = [h.net.createAccount(0), h.net.createAccount(0)];
    for (const d of dids) known.add(d);
    for (let i = 0; i < 4; i++) for (const d of dids) host.writeRecord(d);
    host.emitSync(dids[1]);
    host.changeHandle(dids[0], `renamed-${opts.seed}.test`.toLowerCase().replace(/[^a-z0-9.-]/g, ''));
    const seeds = h.takeFrames(0);
    const seedBytes = seeds.map((f) => f.frame);
    let upstreamSeq = 1_000_000;
    const submitted = () => sum(h.validator.metrics.passed) + sum(h.validator.metrics.dropped);
    const before = submitted();
    await h.submitAll(seeds);
    stats.valid += seeds.length;

    const batch = opts.batch ?? 25;
    for (let start = 0; start < opts.count; start += batch) {
      const frames: InboundFrame[] = [];
      for (let i = start; i < Math.min(opts.count, start + batch); i++) {
        const prng = new Prng(`${opts.seed}:validator:${i}`);
        const seed = prng.pick(seeds);
        const frame = mutate(seed.frame, prng, seedBytes);
        const checked = checkFrame(frame);
        // as ingest hands frames over (type and DID from its check), or, for half of them, as any other source would
        const type = checked.ok && checked.op === 1 ? checked.t : seed.type;
        const did = checked.ok && checked.op === 1 && prng.int(2) === 0 ? checked.did : undefined;
        frames.push({
          hostId: seed.hostId,
          hostname: seed.hostname,
          upstreamSeq: upstreamSeq++,
          type,
          frame,
          receivedAt: performance.now(),
          ...(did !== undefined ? { did } : {}),
        });
      }
      // a well-behaved account keeps writing in between
      host.writeRecord(dids[start % 2]);
      const valid = h.takeFrames(0);
      const all = [...frames.slice(0, frames.length >> 1), ...valid, ...frames.slice(frames.length >> 1)];
      let settled = 0;
      const results = all.map((f, k) => {
        let p: Promise<void>;
        try {
          p = h.validator.submit(f);
        } catch (err) {
          stats.failures.push(`seed ${opts.seed} batch ${start}: submit threw synchronously: ${String(err)}`);
          return Promise.resolve();
        }
        return p.then(
          () => {
            settled++;
          },
          (err: unknown) => {
            settled++;
            stats.failures.push(
              `seed ${opts.seed} input ${start + k}: submit rejected: ${err instanceof Error ? err.stack : String(err)}`,
            );
          },
        );
      });
      await waitFor(() => settled === all.length, `batch ${start} of seed ${opts.seed} settles`, {
        describe: () => `${settled}/${all.length} settled`,
      });
      await Promise.all(results);
      stats.mutated += frames.length;
      stats.valid += valid.length;
    }
    await h.validator.whenIdle();

    // the well-behaved account still gets through
    host.writeRecord(dids[0]);
    const last = h.takeFrames(0);
    const passedBefore = h.validator.metrics.passed.get('#commit') ?? 0;
    await h.submitAll(last);
    stats.valid += last.length;
    if ((h.validator.metrics.passed.get('#commit') ?? 0) !== passedBefore + 1)
      stats.failures.push(`seed ${opts.seed}: a valid commit after the fuzzing did not pass`);
    await h.validator.whenIdle();

    const counted = submitted() - before;
    const total = stats.mutated + stats.valid;
    if (counted !== total)
      stats.failures.push(
        `seed ${opts.seed}: ${total} frames submitted but ${counted} counted as passed or dropped`,
      );
    stats.passed = sum(h.validator.metrics.passed);
    stats.dropped = sum(h.validator.metrics.dropped);
    for (const [reason, n] of h.validator.metrics.dropped) stats.dropReasons[reason] = n;
  } finally {
    await h.close();
  }
  return stats;
}
