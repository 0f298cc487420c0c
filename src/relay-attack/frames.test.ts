// The relay under attack by a crawled host's frames (issue 12): a real relay
// process crawls a well-behaved host writing 100 commits/s and a hostile host
// that floods it (sim/hostile.ts) with giant DIDs, deeply nested headers and
// bodies, #info and error frames, garbage mixed with valid events, and frames
// over the message limit. For each attack the good host's commits must all
// reach a normal consumer exactly once with p99 latency under 1 s, the relay's
// RSS must stay under the ceiling documented in docs/security.md, and the
// relay's metrics must show the attack arrived and was refused (drops by
// reason, forced disconnects). A baseline run with no attack comes first.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FloodOptions, HostileFrameKind } from '../../sim/hostile.ts';
import { AttackRig, assertServed } from '../../test/support/attack-rig.ts';

/** Good commits per run (at 100/s: 5 s), more if the attack has not hit twice by then. */
const EVENTS = 500;

interface FrameAttack {
  kind: HostileFrameKind;
  flood?: FloodOptions;
  /** `reason` values of relay_ingest_dropped_total the attack's frames are counted under */
  dropped: string[];
  /** relay_ingest_disconnects_total reason */
  disconnect: string;
  /** relay peak RSS ceiling, MiB (docs/security.md: measured peak × 2, rounded up) */
  ceilingMiB: number;
}

const ATTACKS: FrameAttack[] = [
  { kind: 'giantDid', dropped: ['bad-did'], disconnect: 'bad-frames', ceilingMiB: 400 },
  { kind: 'nestedHeader', dropped: ['bad-header'], disconnect: 'bad-frames', ceilingMiB: 400 },
  { kind: 'nestedBody', dropped: ['too-deep'], disconnect: 'bad-frames', ceilingMiB: 400 },
  { kind: 'infoFlood', dropped: ['repeated-info'], disconnect: 'bad-frames', ceilingMiB: 400 },
  { kind: 'errorFlood', dropped: ['error-frame'], disconnect: 'error-frame', ceilingMiB: 400 },
  {
    kind: 'garbage',
    // 200 garbage frames/s with one valid commit of the hostile host's own after every 4
    flood: { perSecond: 200, validEvery: 4 },
    dropped: ['malformed', 'bad-header'],
    disconnect: 'bad-frames',
    ceilingMiB: 400,
  },
  { kind: 'oversize', dropped: [], disconnect: 'too-large', ceilingMiB: 400 },
];

const sumOf = async (rig: AttackRig, name: string, label: string, values: string[]): Promise<number> => {
  let n = 0;
  for (const v of values) n += await rig.metric(name, `${label}="${v}"`);
  return n;
};

describe('the relay under attack by a host: frames', () => {
  it('baseline: no attack', async (t) => {
    const rig = await AttackRig.start({ seed: 'frames-baseline' });
    try {
      const r = await rig.measure({ events: EVENTS });
      assertServed(t, rig, r, 400);
    } finally {
      await rig.stop();
    }
  });

  for (const a of ATTACKS) {
    it(`${a.kind}: the good host's events still flow`, async (t) => {
      const rig = await AttackRig.start({ seed: `frames-${a.kind}` });
      const disconnects = () => rig.metric('relay_ingest_disconnects_total', `reason="${a.disconnect}"`);
      const hostileCommits = () => rig.hostileDids.length + rig.hostile.hostile.validEmitted; // warm-up + those mixed into the flood
      try {
        const r = await rig.measure({
          events: EVENTS,
          attack: () => rig.hostile.hostile.flood(a.kind, a.flood),
          // the attack hit at least twice: the first connection and the one after the back-off
          continueUntil: async () => (await disconnects()) >= 2,
        });
        rig.hostile.hostile.stopFlood();
        assertServed(t, rig, r, a.ceilingMiB);
        const dropped = await sumOf(rig, 'relay_ingest_dropped_total', 'reason', a.dropped);
        t.diagnostic(
          `${rig.hostile.hostile.sent[a.kind]} hostile frames sent on ${rig.hostile.hostile.floodedConnections} connections; relay dropped ${dropped}, disconnected ${await disconnects()} times`,
        );
        assert.ok(
          (await disconnects()) >= 2,
          'the relay disconnected the hostile host, then again after the back-off',
        );
        if (a.kind === 'errorFlood') assert.ok(dropped >= 2, 'one error frame read per connection');
        else if (a.dropped.length > 0) assert.ok(dropped >= 20, 'the bad-frame allowance (20) was spent');
        if (a.flood?.validEvery) {
          // valid events between the garbage are relayed, not thrown away with it
          const relayed = [...rig.consumer.commitsByRepo.entries()]
            .filter(([did]) => rig.hostile.accounts.has(did))
            .reduce((n, [, c]) => n + c, 0);
          assert.ok(relayed > rig.hostileDids.length, `hostile host's valid commits relayed: ${relayed}`);
          assert.ok(relayed <= hostileCommits());
        }
      } finally {
        await rig.stop();
      }
    });
  }
});
