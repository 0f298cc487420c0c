// The relay under attack by a host's repos (issue 12): a hostile host breaks
// its accounts' sync 1.1 chains on purpose, ten a second, so that the relay
// resyncs each one with getRepo, and serves CAR bombs (sim/hostile.ts,
// sim/hostile-repo.ts): a million tiny valid blocks (the worker must index
// them before the block limit refuses the repo), a declared Content-Length
// over the size limit, and a chunked body that never ends. Meanwhile a
// well-behaved host writes 150 commits/s; a normal consumer must get every
// one exactly once with p99 latency under 1 s, and the relay's RSS must stay
// under the ceiling documented in docs/security.md. Each run lasts until a
// number of bombs were refused (counted in relay_repo_fetches_total), so the
// measurement covers the attack whatever the machine's speed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CarBombKind } from '../../sim/hostile-repo.ts';
import { AttackRig, assertServed } from '../../test/support/attack-rig.ts';

const EVENTS = 600;

interface RepoAttack {
  kind: CarBombKind;
  /** relay_repo_fetches_total result the bombs are refused with */
  result: string;
  /** bombs refused before the run may end */
  bombs: number;
  /** relay peak RSS ceiling, MiB (docs/security.md: measured peak × 2, rounded up) */
  ceilingMiB: number;
}

const ATTACKS: RepoAttack[] = [
  // 1,100,000 blocks (45 MB): each takes the repo worker seconds; two is enough to overlap the run
  { kind: 'blocks', result: 'too-many-blocks', bombs: 2, ceilingMiB: 1200 },
  // 129 MiB declared: refused before the body
  { kind: 'declared-size', result: 'too-large', bombs: 8, ceilingMiB: 400 },
  // chunked, no length: read up to the 128 MiB limit, four at a time (RELAY_REPO_FETCH_CONCURRENCY)
  { kind: 'endless', result: 'too-large', bombs: 4, ceilingMiB: 1200 },
];

describe('the relay under attack by a host: repo CARs', () => {
  for (const a of ATTACKS) {
    it(`CAR bombs (${a.kind}) after broken chains: the good host's events still flow`, async (t) => {
      // 40 accounts: the relay retries an account's resync at most once a minute
      const rig = await AttackRig.start({ seed: `repos-${a.kind}`, hostileAccounts: 40 });
      const refused = () => rig.metric('relay_repo_fetches_total', `purpose="resync",result="${a.result}"`);
      try {
        rig.hostile.hostile.carBombs(a.kind); // built now, before the measured run
        const r = await rig.measure({
          events: EVENTS,
          attack: () => rig.hostile.hostile.breakChains(rig.hostileDids, 10),
          continueUntil: async () => (await refused()) >= a.bombs,
        });
        assertServed(t, rig, r, a.ceilingMiB);
        const failed = await rig.metric('relay_validation_resyncs_total', 'result="failed"');
        t.diagnostic(
          `${rig.hostile.hostile.brokenChains.length} chains broken; ${await refused()} bombs refused (${a.result}), ${failed} resyncs failed`,
        );
        assert.ok((await refused()) >= a.bombs);
        assert.ok(failed >= a.bombs, 'each refused bomb is a counted resync failure');
        assert.equal(
          await rig.metric('relay_repo_fetches_total', 'purpose="resync",result="ok"'),
          0,
          'no bomb was taken for a repo',
        );
      } finally {
        await rig.stop();
      }
    });
  }
});
