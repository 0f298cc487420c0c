// The relay under attack by its own clients (issue 12): slowloris firehose
// consumers that complete the handshake and then never read (live, or
// replaying the whole log from cursor 0), consumers that read a byte a
// second, and HTTP clients that trickle their request heads forever
// (sim/attackers.ts). A real relay process crawls a well-behaved host writing
// 100 commits/s; a normal consumer must get every one exactly once with p99
// latency under 1 s, the relay's RSS must stay under the ceiling documented
// in docs/security.md, and new clients must still be served.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type SlowConsumer, slowConsumer, tricklerPool } from '../../sim/attackers.ts';
import { subscribe } from '../../sim/consumer.ts';
import { AttackRig, assertServed } from '../../test/support/attack-rig.ts';
import { waitFor } from '../../test/support/wait.ts';
import { cidToString } from '../protocol/cid.ts';

const EVENTS = 500;
/** Slow consumers per test: 20 (the per-client limit) from each of 5 loopback addresses. */
const SLOW_CONSUMERS = 100;
/** Events in the log before the replaying slow consumers connect (~4 MB). */
const BACKLOG = 3000;

async function slowConsumers(url: string, bytesPerSecond: number): Promise<SlowConsumer[]> {
  const out: SlowConsumer[] = [];
  for (let i = 0; i < SLOW_CONSUMERS; i++) {
    out.push(await slowConsumer(url, { bytesPerSecond, localAddress: `127.0.0.${2 + Math.floor(i / 20)}` }));
  }
  return out;
}

describe('the relay under attack by clients', () => {
  const cases = [
    {
      name: 'slowloris consumers that never read',
      cursor: '',
      bytesPerSecond: 0,
      backlog: 0,
      ceilingMiB: 400,
    },
    {
      name: 'slowloris consumers replaying the log from cursor 0, never reading',
      cursor: '?cursor=0',
      bytesPerSecond: 0,
      backlog: BACKLOG,
      ceilingMiB: 1200,
    },
    { name: 'consumers reading a byte a second', cursor: '', bytesPerSecond: 1, backlog: 0, ceilingMiB: 400 },
  ];
  for (const c of cases) {
    it(`${c.name}: the good host's events still flow`, async (t) => {
      const rig = await AttackRig.start({ seed: `clients-${c.bytesPerSecond}-${c.backlog}` });
      let slow: SlowConsumer[] = [];
      try {
        if (c.backlog > 0) {
          const dids = rig.goodDids;
          const written = Array.from({ length: c.backlog }, (_, i) =>
            cidToString(rig.good.writeRecord(dids[i % dids.length]).commit!),
          );
          await waitFor(
            () => written.every((cid) => rig.consumer.receivedAt.has(cid)),
            'the backlog relayed',
          );
        }
        const r = await rig.measure({
          events: EVENTS,
          attack: async () => {
            slow = await slowConsumers(`${rig.firehoseUrl}${c.cursor}`, c.bytesPerSecond);
          },
        });
        assertServed(t, rig, r, c.ceilingMiB);
        assert.equal(slow.length, SLOW_CONSUMERS);
        for (const s of slow) assert.match(s.status, /^HTTP\/1\.1 101 /, 'every slow consumer was accepted');
        assert.equal(await rig.metric('relay_firehose_consumers'), SLOW_CONSUMERS + 1);
        t.diagnostic(`outbox bytes ${await rig.metric('relay_firehose_outbox_bytes')}`);
      } finally {
        for (const s of slow) s.close();
        await rig.stop();
      }
    });
  }

  it("HTTP clients trickling their request heads: the good host's events still flow, new consumers connect", async (t) => {
    // A 2 s head timeout (default 10 s) so that tricklers are cut off and
    // replaced several times within the run.
    const rig = await AttackRig.start({
      seed: 'clients-trickle',
      relayEnv: { RELAY_HTTP_HEADERS_TIMEOUT_MS: '2000', RELAY_HTTP_REQUEST_TIMEOUT_MS: '2000' },
    });
    let pool: Awaited<ReturnType<typeof tricklerPool>> | undefined;
    try {
      const r = await rig.measure({
        events: EVENTS,
        attack: async () => {
          pool = await tricklerPool(rig.relay.port, 500, {
            intervalMs: 200,
            localAddress: (i) => `127.0.1.${(i % 10) + 1}`,
          });
        },
        // every trickler of the first round was cut off and replaced
        continueUntil: () => (pool?.cutOff().timedOut ?? 0) >= 500,
      });
      assertServed(t, rig, r, 400);
      // While the pool keeps 500 connections trickling, a new consumer connects and is served.
      const late = await subscribe(rig.firehoseUrl);
      try {
        const ev = rig.good.writeRecord(rig.goodDids[0]);
        await waitFor(
          () => late.frames.some((f) => f.frame?.body.repo === ev.did && f.frame.body.rev === ev.rev),
          'the new consumer gets the next event',
        );
      } finally {
        await late.close();
      }
      const cut = pool?.cutOff();
      t.diagnostic(`tricklers opened ${pool?.opened()}, cut off ${cut?.closed} (${cut?.timedOut} with 408)`);
      assert.ok(
        (await rig.metric('relay_http_client_errors_total', 'server="public",reason="timeout"')) >= 500,
      );
    } finally {
      pool?.stop();
      await rig.stop();
    }
  });
});
