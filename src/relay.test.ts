// End to end: the whole relay (ingest → validation → event log → firehose →
// API) against the simulated network. Hosts ask the relay to crawl them, the
// network emits a deterministic stream, and a consumer of the relay's firehose
// must see every valid upstream event exactly once, in per-repo order, with
// gapless relay seqs, re-verifiable; faulty events must not come through; the
// sync endpoints must agree with the hosts; and after a restart the relay
// resumes each host from its saved cursor without losing or repeating events.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { subscribe } from '../sim/consumer.ts';
import { SimNetwork } from '../sim/network.ts';
import { checkCommitBody } from '../sim/verify.ts';
import { crawlAll, startTestRelay, waitRelayCaughtUp } from '../test/support/relay-harness.ts';
import { tempDir } from '../test/support/temp.ts';
import { waitFor } from '../test/support/wait.ts';
import { cidToString } from './protocol/cid.ts';
import type { Relay } from './relay.ts';

interface Seen {
  seq: number;
  t: string;
  did: string;
  rev?: string;
  commit?: string;
}

describe('relay end to end against the simulated network', () => {
  let net: SimNetwork;
  let dataDir: string;
  let relay: Relay | undefined;

  const startRelay = () => startTestRelay(net, dataDir);

  before(async () => {
    dataDir = tempDir('atrelay-e2e-');
    net = await SimNetwork.start({ hosts: 3, accountsPerHost: 4, seed: 42 });
    relay = await startRelay();
  });

  after(async () => {
    await relay?.stop();
    await net.stop();
  });

  it('relays every valid event once, in order, verifiably; drops faults; resumes after a restart', async () => {
    const r = relay!;
    const relayUrl = `http://127.0.0.1:${r.port}`;
    await crawlAll(r, net);

    const consumer = await subscribe(
      `ws://127.0.0.1:${r.port}/xrpc/com.atproto.sync.subscribeRepos?cursor=0`,
    );
    try {
      // A deterministic stream plus one fault per kind that must be dropped.
      const emitted = net.step(150);
      const victim = net.accounts[0].did;
      const host0 = net.hostOf(victim);
      host0.injectFault('highS');
      const bad1 = host0.writeRecord(victim);
      host0.injectFault('wrongKey');
      const bad2 = host0.writeRecord(victim);
      // The host's chain moved on past the two commits the relay refused, so the
      // next commit does not chain onto what the relay holds: the relay must
      // resync the repo (#account desynchronized, #sync, #account active) and
      // then follow the chain again from the resynced head.
      const unchained = host0.writeRecord(victim);
      const commitsSeen = () =>
        consumer.frames.filter(
          (f) => f.frame?.header.op === 1 && 't' in f.frame.header && f.frame.header.t === '#commit',
        ).length;
      const diagnose = async (err: Error) => {
        const metrics = (await r.registry.metrics())
          .split('\n')
          .filter((l) => /^relay_(validat|ingest)/.test(l));
        throw new Error(
          `${err.message}: ${commitsSeen()} commits, ${consumer.frames.length} frames\n${metrics.join('\n')}`,
        );
      };
      await waitFor(() => consumer.frames.length >= emitted.length + 3, 'the resync').catch(diagnose);
      const good = host0.writeRecord(victim);
      const expectedCommits = emitted.filter((e) => e.t === '#commit').length + 1;
      await waitFor(() => commitsSeen() >= expectedCommits, 'the commit after the resync').catch(diagnose);
      await waitRelayCaughtUp(r, net, consumer); // nothing left in flight: anything extra has shown up

      const seen: Seen[] = [];
      for (const f of consumer.frames) {
        assert.ok(f.frame, 'every frame decodes');
        assert.equal(f.frame.header.op, 1);
        const body = f.frame.body as Record<string, unknown>;
        const t = 't' in f.frame.header ? f.frame.header.t : '';
        const did = (body.repo ?? body.did) as string;
        if (t === '#commit') {
          const check = checkCommitBody(body, net.plc);
          assert.deepEqual(check.problems, [], `relayed commit of ${did} verifies`);
        }
        seen.push({
          seq: body.seq as number,
          t,
          did,
          rev: body.rev as string | undefined,
          commit: body.commit ? cidToString(body.commit as never) : undefined,
        });
      }
      // Relay seqs: strictly increasing by one.
      for (let i = 1; i < seen.length; i++)
        assert.equal(seen[i].seq, seen[i - 1].seq + 1, 'gapless relay seq');

      // Every valid upstream commit exactly once; faulty ones never.
      const relayedCommits = new Map<string, number>();
      for (const s of seen)
        if (s.t === '#commit') relayedCommits.set(s.commit!, (relayedCommits.get(s.commit!) ?? 0) + 1);
      for (const e of [...emitted.filter((x) => x.t === '#commit'), good]) {
        assert.equal(
          relayedCommits.get(cidToString(e.commit!)),
          1,
          `commit ${e.rev} of ${e.did} relayed once`,
        );
      }
      for (const bad of [bad1, bad2, unchained])
        assert.equal(relayedCommits.get(cidToString(bad.commit!)), undefined);
      assert.equal(relayedCommits.size, expectedCommits);
      const victimOther = seen.filter((x) => x.did === victim && x.t !== '#commit').map((x) => x.t);
      const victimEvents = emitted.filter((e) => e.did === victim && e.t !== '#commit').map((e) => e.t);
      assert.deepEqual(
        victimOther,
        [...victimEvents, '#account', '#sync', '#account'],
        'resync of the broken chain',
      );
      const sync = seen.find((x) => x.did === victim && x.t === '#sync');
      assert.equal(sync?.rev, unchained.rev, 'the #sync carries the head the relay fetched');

      // Per repo, revs strictly increase.
      const lastRev = new Map<string, string>();
      for (const s of seen) {
        if (s.t !== '#commit') continue;
        const prev = lastRev.get(s.did);
        if (prev) assert.ok(s.rev! > prev, `revs of ${s.did} increase`);
        lastRev.set(s.did, s.rev!);
      }

      // The sync endpoints agree with the hosts.
      for (const a of net.accounts) {
        const host = net.hostOf(a.did);
        const [mine, theirs] = await Promise.all(
          [relayUrl, host.url].map(async (base) => {
            const res = await fetch(`${base}/xrpc/com.atproto.sync.getLatestCommit?did=${a.did}`);
            return res.status === 200 ? ((await res.json()) as { cid: string; rev: string }) : res.status;
          }),
        );
        if (lastRev.has(a.did)) assert.deepEqual(mine, theirs, `getLatestCommit of ${a.did}`);
      }

      // Restart: stop the relay, write more, start again: the relay resumes from its saved cursors.
      const before = seen.length;
      await r.stop();
      relay = undefined;
      const during = net.step(40).filter((e) => e.t === '#commit');
      relay = await startRelay();
      const r2 = relay;
      await waitFor(
        () => (r2.hosts?.list() ?? []).filter((h) => h.connected).length === net.hosts.length,
        'reconnected',
      );
      const afterRestart = net.step(20).filter((e) => e.t === '#commit');
      const consumer2 = await subscribe(
        `ws://127.0.0.1:${r2.port}/xrpc/com.atproto.sync.subscribeRepos?cursor=${seen[seen.length - 1].seq}`,
      );
      try {
        const want = new Set([...during, ...afterRestart].map((e) => cidToString(e.commit!)));
        const got = () =>
          consumer2.frames
            .map((f) => f.frame?.body as Record<string, unknown> | undefined)
            .filter((b) => b?.commit !== undefined && b.ops !== undefined)
            .map((b) => cidToString(b!.commit as never));
        await waitFor(
          () => want.size > 0 && [...want].every((c) => got().includes(c)),
          'events written while down',
        );
        const counts = new Map<string, number>();
        for (const c of got()) counts.set(c, (counts.get(c) ?? 0) + 1);
        for (const c of want) assert.equal(counts.get(c), 1, 'no event lost or repeated across the restart');
        assert.ok(before > 0);
      } finally {
        consumer2.ws.close();
      }
    } finally {
      consumer.ws.close();
    }
  });
});
