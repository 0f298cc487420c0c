import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Harness, type HarnessOptions, startHarness } from '../../test/support/validator-harness.ts';
import { waitFor } from '../../test/support/wait.ts';
import { takeDown } from '../api/takedown.ts';
import { bytesEqual } from '../protocol/bytes.ts';
import { decodeFrame, rewriteSeq } from '../protocol/frames.ts';
import type { MetadataStore } from '../store/metadata-store.ts';
import { type IdentitySource, isAuthoritativeHost } from './validator.ts';

async function withHarness(opts: HarnessOptions, fn: (h: Harness) => Promise<void>): Promise<void> {
  const h = await startHarness(opts);
  try {
    await fn(h);
  } finally {
    await h.close();
  }
}

/** Creates an account on host `i` and feeds its creation events (#identity, #account, #commit). */
async function newAccount(h: Harness, i = 0, handle?: string): Promise<string> {
  const did = h.net.createAccount(i, handle ? { handle } : {});
  await h.submitAll(h.takeFrames(i));
  return did;
}

/** Wrappers around some of the store's methods (each gets the store's own, bound). */
type StoreIntercepts = {
  [K in keyof MetadataStore]?: (own: NonNullable<MetadataStore[K]>) => MetadataStore[K];
};

/** A HarnessOptions.wrapStore that replaces the named methods with their wrappers. */
function interceptStore(intercepts: StoreIntercepts): (inner: MetadataStore) => MetadataStore {
  return (inner) =>
    new Proxy(inner, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver);
        const wrap = intercepts[prop as keyof MetadataStore] as ((own: unknown) => unknown) | undefined;
        return wrap && typeof v === 'function' ? wrap(v.bind(target)) : v;
      },
    });
}

/** A promise to wait on and the function that resolves it. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((r) => {
    open = r;
  });
  return { opened, open };
}

const types = (events: { t: string }[]) => events.map((e) => e.t);

describe('isAuthoritativeHost', () => {
  it('compares the DID document PDS with the frame host, ignoring default ports and case', () => {
    const id = (pdsEndpoint?: string) => ({ did: 'did:plc:x', pdsEndpoint });
    assert.ok(isAuthoritativeHost(id('https://PDS.example.com'), 'pds.example.com'));
    assert.ok(isAuthoritativeHost(id('https://pds.example.com'), 'pds.example.com:443'));
    assert.ok(isAuthoritativeHost(id('http://127.0.0.1:2583'), '127.0.0.1:2583'));
    assert.ok(!isAuthoritativeHost(id('http://127.0.0.1:2583'), '127.0.0.1:2584'));
    assert.ok(!isAuthoritativeHost(id('https://evil.example.com'), 'pds.example.com'));
    assert.ok(!isAuthoritativeHost(id(undefined), 'pds.example.com'));
  });
});

describe('Validator', () => {
  it('passes good events in input order, commit frames byte-identical but for the seq', () =>
    withHarness({}, async (h) => {
      const did = await newAccount(h);
      for (let i = 0; i < 3; i++) h.net.hosts[0].writeRecord(did);
      const frames = h.takeFrames(0);
      await h.submitAll(frames);
      const out = await h.output();
      assert.deepEqual(types(out), ['#identity', '#account', '#commit', '#commit', '#commit', '#commit']);
      assert.deepEqual(
        out.map((e) => e.seq),
        [1, 2, 3, 4, 5, 6],
      );
      for (let i = 0; i < 3; i++)
        assert.ok(bytesEqual(out[3 + i].frame, rewriteSeq(frames[i].frame, out[3 + i].seq)));
      await h.validator.whenIdle();
      const account = await h.store.getAccountByDid(did);
      assert.equal(account?.head?.rev, out[5].body.rev);
      assert.equal(h.validator.metrics.dropped.size, 0);
      assert.equal(h.validator.metrics.passed.get('#commit'), 4);
    }));

  it('tags every event it appends for a frame with the frame origin; headFloor covers heads not yet stored', () =>
    withHarness({}, async (h) => {
      const did = await newAccount(h);
      await h.validator.whenIdle();
      const host = h.net.hosts[0];
      host.writeRecord(did);
      const last = host.writeRecord(did);
      const frames = h.takeFrames(0);
      await h.submitAll(frames);
      const out = await h.output();
      const seqs = out.slice(-2).map((e) => e.seq);
      // the heads are written in a batch a little later: until then the floor holds them
      const floor = h.validator.headFloor();
      const stored = (await h.store.getAccountByDid(did))?.head?.rev;
      assert.ok(
        floor <= seqs[0] || stored === last.rev,
        `floor ${floor} covers seq ${seqs[0]} (head ${stored})`,
      );
      await h.validator.whenIdle();
      assert.equal(h.validator.headFloor(), Number.POSITIVE_INFINITY);
      assert.equal((await h.store.getAccountByDid(did))?.head?.rev, last.rev);
      assert.deepEqual(
        out.slice(-2).map((e) => e.origin),
        frames.map((f) => ({ hostId: f.hostId, seq: f.upstreamSeq })),
      );
      assert.ok(out.every((e) => e.origin !== undefined && e.origin.hostId === h.hostIds[0]));
    }));

  it('drops a commit signed with a wrong key, after re-resolving the DID once', () =>
    withHarness({}, async (h) => {
      const did = await newAccount(h);
      const before = h.net.plc.requests;
      const onMainBefore = h.validator.metrics.mainThreadSignatures;
      h.net.hosts[0].injectFault('wrongKey');
      h.net.hosts[0].writeRecord(did);
      await h.submitAll(h.takeFrames(0));
      assert.equal(h.validator.metrics.droppedCount('bad-signature'), 1);
      assert.equal(h.net.plc.requests - before, 1, 'one forced re-resolution');
      assert.equal(h.validator.metrics.reresolutions, 1);
      // the re-resolution gave the key the worker had already tried: nothing to check again
      assert.equal(h.validator.metrics.mainThreadSignatures - onMainBefore, 0);
    }));

  it("verifies a new account's first commit in a worker with its key, not again on the main thread", () =>
    withHarness({ settings: { workers: 1 } }, async (h) => {
      // #identity, #account and #commit submitted at once: the commit is admitted
      // before any of them resolved the DID, so the identity cache misses
      await newAccount(h);
      const dids = [h.net.createAccount(1), h.net.createAccount(1)];
      for (const did of dids) h.net.hosts[1].writeRecord(did);
      await h.submitAll(h.takeFrames(1));
      assert.equal(h.validator.metrics.passed.get('#commit'), 5);
      assert.equal(h.validator.metrics.dropped.size, 0);
      assert.ok(h.validator.metrics.identity.misses >= 3, 'the identity cache missed at admission');
      assert.equal(h.validator.metrics.mainThreadSignatures, 0);
    }));

  it('checks a commit signed with a rotated key against the new key', () =>
    withHarness({ settings: { workers: 1 } }, async (h) => {
      const did = await newAccount(h);
      await h.validator.whenIdle();
      const host = h.net.hosts[0];
      host.rotateSigningKey(did);
      host.writeRecord(did);
      await h.submitAll(h.takeFrames(0));
      assert.equal(h.validator.metrics.dropped.size, 0);
      assert.equal(h.validator.metrics.passed.get('#commit'), 2);
      // 0 when the #identity purged the cache before the commit was admitted (the
      // worker got the new key), 1 when the worker had the old key
      assert.ok(h.validator.metrics.mainThreadSignatures <= 1);
    }));

  it('drops a high-S signature', () =>
    withHarness({}, async (h) => {
      const did = await newAccount(h);
      h.net.hosts[0].injectFault('highS');
      h.net.hosts[0].writeRecord(did);
      await h.submitAll(h.takeFrames(0));
      assert.equal(h.validator.metrics.droppedCount('high-s-signature'), 1);
    }));

  it('drops a rev rollback and a future rev', () =>
    withHarness({}, async (h) => {
      const did = await newAccount(h);
      const host = h.net.hosts[0];
      host.writeRecord(did);
      host.injectFault('revRollback');
      host.writeRecord(did);
      await h.submitAll(h.takeFrames(0));
      assert.equal(h.validator.metrics.droppedCount('rev-not-newer'), 1);
      host.injectFault('futureRev');
      host.writeRecord(did);
      await h.submitAll(h.takeFrames(0));
      assert.equal(h.validator.metrics.droppedCount('future-rev'), 1);
      assert.equal(h.validator.metrics.passed.get('#commit'), 2);
    }));

  it('heals a broken prevData chain by resync: #account desynchronized, #sync, then resumes', () =>
    withHarness({}, async (h) => {
      const did = await newAccount(h);
      const host = h.net.hosts[0];
      // The resync's getRepo reply is computed when the request arrives and held
      // back: the #sync it yields carries the broken commit's head whatever the
      // timing, and the next commit is submitted while the resync is in flight.
      host.xrpcHolds.hold('com.atproto.sync.getRepo');
      host.injectFault('brokenPrevData');
      const broken = host.writeRecord(did);
      await h.submitAll(h.takeFrames(0));
      await waitFor(() => host.xrpcHolds.waiting('com.atproto.sync.getRepo') === 1, 'the resync fetch');
      // the next commit chains from the PDS's real head; it waits in the repo queue behind the resync
      const next = host.writeRecord(did);
      const submitted = h.submitAll(h.takeFrames(0));
      host.xrpcHolds.release('com.atproto.sync.getRepo');
      await submitted;
      const m = h.validator.metrics;
      assert.equal(m.droppedCount('chain-break'), 1);
      assert.equal(m.resyncs.ok, 1);
      assert.equal(m.chainFailures.get('inversion'), 1);
      assert.equal(m.chainFailures.get('prev-data'), 1);
      const out = (await h.output()).slice(3);
      assert.deepEqual(types(out), ['#account', '#sync', '#account', '#commit']);
      assert.deepEqual(out[0].body, { ...out[0].body, active: false, status: 'desynchronized', did });
      assert.equal(out[1].body.rev, broken.rev, '#sync carries the PDS head');
      assert.equal(out[0].origin?.seq, 4, 'the chain break #account relays the broken commit');
      assert.equal(out[1].origin, undefined, 'the resync events are the relay own');
      assert.equal(out[2].body.active, true);
      assert.equal(out[3].body.rev, next.rev);
      await h.validator.whenIdle();
      const account = await h.store.getAccountByDid(did);
      assert.equal(account?.status, 'active');
      assert.equal(account?.head?.rev, next.rev);
    }));

  it('a resync that fetches a head newer than queued commits covers them: they are dropped as not newer', () =>
    withHarness({}, async (h) => {
      const did = await newAccount(h);
      const host = h.net.hosts[0];
      host.injectFault('brokenPrevData');
      host.writeRecord(did);
      // the PDS moves on before the relay sees the break: getRepo serves the later head
      const next = host.writeRecord(did);
      await h.submitAll(h.takeFrames(0));
      const m = h.validator.metrics;
      assert.equal(m.droppedCount('chain-break'), 1);
      assert.equal(m.resyncs.ok, 1);
      assert.equal(m.droppedCount('rev-not-newer'), 1);
      const out = (await h.output()).slice(3);
      assert.deepEqual(types(out), ['#account', '#sync', '#account']);
      assert.equal(out[1].body.rev, next.rev, '#sync carries the head that includes the queued commit');
      assert.equal(out[2].body.active, true);
      await h.validator.whenIdle();
      assert.equal((await h.store.getAccountByDid(did))?.head?.rev, next.rev);
    }));

  it('resyncs after a skipped commit (since does not chain)', () =>
    withHarness({}, async (h) => {
      const did = await newAccount(h);
      const host = h.net.hosts[0];
      host.injectFault('skippedCommit');
      host.writeRecord(did);
      await h.submitAll(h.takeFrames(0));
      await h.validator.whenIdle(); // the resync runs after the dropped commit has finished
      assert.equal(h.validator.metrics.chainFailures.get('since'), 1);
      assert.equal(h.validator.metrics.resyncs.ok, 1);
      host.writeRecord(did);
      await h.submitAll(h.takeFrames(0));
      assert.equal(h.validator.metrics.passed.get('#commit'), 2);
    }));

  it('requestResync resyncs an account behind its host now, in its order, without waiting for an event', () =>
    withHarness({}, async (h) => {
      const did = await newAccount(h);
      const host = h.net.hosts[0];
      // a commit the relay never sees
      const missed = host.applyUnannounced(did, [host.randomWriteFor(host.accounts.get(did)!)]);
      assert.equal(await h.validator.requestResync(did), 'queued');
      await h.validator.whenIdle();
      assert.equal(h.validator.metrics.resyncs.ok, 1);
      const out = (await h.output()).slice(3);
      assert.deepEqual(types(out), ['#sync', '#account']);
      assert.equal(out[0].body.rev, missed.rev);
      assert.equal(out[1].body.active, true);
      const account = await h.store.getAccountByDid(did);
      assert.equal(account?.status, 'active');
      assert.equal(account?.head?.rev, missed.rev);
      assert.equal(await h.validator.requestResync(did), 'unchanged', 'one attempt per retry interval');
      assert.equal(await h.validator.requestResync('did:plc:unknown'), 'ineligible');
      await h.store.setTakedown(did, 'test');
      assert.equal(await h.validator.requestResync(did), 'ineligible', 'not a taken-down account');
    }));

  it('applyUpstreamStatus records a status learned out of band and emits the #account once', () =>
    withHarness({}, async (h) => {
      const did = await newAccount(h);
      assert.equal(await h.validator.applyUpstreamStatus(did, 'deactivated'), 'emitted');
      assert.equal(await h.validator.applyUpstreamStatus(did, 'deactivated'), 'unchanged');
      assert.equal(await h.validator.applyUpstreamStatus(did, 'active'), 'emitted');
      const out = (await h.output()).slice(3);
      assert.deepEqual(types(out), ['#account', '#account']);
      assert.deepEqual([out[0].body.active, out[0].body.status], [false, 'deactivated']);
      assert.equal(out[1].body.active, true);
      assert.equal((await h.store.getAccountByDid(did))?.upstreamStatus, 'active');
      await h.store.setTakedown(did, 'test');
      assert.equal(
        await h.validator.applyUpstreamStatus(did, 'suspended'),
        'unchanged',
        'recorded; a taken-down account publishes takendown either way',
      );
      assert.equal((await h.store.getAccountByDid(did))?.upstreamStatus, 'suspended');
    }));

  it('lenient mode logs the chain failure and passes the event', () =>
    withHarness({ settings: { lenientSync: true } }, async (h) => {
      const did = await newAccount(h);
      h.net.hosts[0].injectFault('brokenPrevData');
      h.net.hosts[0].writeRecord(did);
      await h.submitAll(h.takeFrames(0));
      assert.equal(h.validator.metrics.passed.get('#commit'), 2);
      assert.equal(h.validator.metrics.chainFailures.get('inversion'), 1);
      assert.equal(h.validator.metrics.resyncs.ok + h.validator.metrics.resyncs.failed, 0);
    }));

  it('drops events from a host the DID document does not name', () =>
    withHarness({}, async (h) => {
      const did = await newAccount(h);
      h.net.hosts[0].injectFault('wrongHost');
      h.net.hosts[0].writeRecord(did);
      // a cached identity is trusted until it expires or an #identity event purges it
      h.identity.purge(did);
      await h.submitAll(h.takeFrames(0));
      assert.equal(h.validator.metrics.droppedCount('wrong-host'), 1);
    }));

  it('waits through a PLC outage instead of dropping: the events pass once the directory answers', () =>
    withHarness({ identityCache: { errorTtlMs: 50 } }, async (h) => {
      const plc = h.net.plc;
      plc.outage = 503;
      const did = h.net.createAccount(0);
      h.net.hosts[0].writeRecord(did);
      const frames = h.takeFrames(0);
      let settled = false;
      const submitted = h.submitAll(frames).finally(() => {
        settled = true;
      });
      const m = h.validator.metrics;
      await waitFor(() => m.identityRetries >= 2, 'retries during the outage');
      assert.equal(settled, false, 'the events wait (the host cursor cannot pass them)');
      assert.ok(m.identityWaiting().events >= 1);
      assert.equal(m.droppedCount('identity-unresolved'), 0);
      plc.outage = undefined;
      await submitted;
      assert.equal(m.droppedCount('identity-unresolved'), 0);
      assert.deepEqual(types(await h.output()), ['#identity', '#account', '#commit', '#commit']);
      assert.deepEqual(m.identityWaiting(), { repos: 0, events: 0 });
    }));

  it('drops after identityRetryMaxMs of transient failures, and at once on a definitive answer', () =>
    withHarness({ identityCache: { errorTtlMs: 50 }, settings: { identityRetryMaxMs: 1500 } }, async (h) => {
      const m = h.validator.metrics;
      h.net.plc.outage = 503;
      h.net.createAccount(0);
      await h.submitAll(h.takeFrames(0));
      assert.equal(m.droppedCount('identity-unresolved'), 3, 'the account creation events, after waiting');
      assert.ok(m.identityRetries >= 1);
      h.net.plc.outage = undefined;
      const gone = h.net.createAccount(0);
      h.net.plc.tombstone(gone);
      const retries = m.identityRetries;
      await h.submitAll(h.takeFrames(0));
      assert.equal(m.droppedCount('identity-unresolved'), 6);
      assert.equal(m.identityRetries, retries, 'a tombstone is an answer: no retry');
    }));

  it("does not purge a cached identity on an #identity event from a host that is not the account's", () =>
    withHarness({}, async (h) => {
      const did = await newAccount(h);
      const before = h.net.plc.requests;
      h.net.hosts[0].queueHandleChange(did, 'renamed.pds0.test');
      h.net.hosts[0].emitQueued(1);
      const [identityFrame] = h.takeFrames(0);
      const forged = { ...identityFrame, hostId: h.hostIds[1], hostname: h.net.hosts[1].hostname };
      await h.submitAll([forged, forged, forged]);
      assert.equal(h.validator.metrics.droppedCount('wrong-host'), 3);
      assert.ok(h.identity.get(did), 'the identity stays cached');
      assert.equal(h.net.plc.requests - before, 1, 'one fresh look, not one per event');
    }));

  it('forces one identity refresh, not one per event, for commits from a wrong host', () =>
    withHarness({}, async (h) => {
      const did = await newAccount(h);
      const host = h.net.hosts[0];
      const before = h.net.plc.requests;
      for (let i = 0; i < 3; i++) host.writeRecord(did);
      const forged = h
        .takeFrames(0)
        .map((f) => ({ ...f, hostId: h.hostIds[1], hostname: h.net.hosts[1].hostname }));
      await h.submitAll(forged);
      assert.equal(h.validator.metrics.droppedCount('wrong-host'), 3);
      assert.equal(h.net.plc.requests - before, 1);
    }));

  it('takes a takedown in the account order: a commit decided before it but appended after it stays hidden', async () => {
    // Repo A's account lookup is held, so A's event holds the front of the
    // order queue; the victim's commit is decided behind it and waits there
    // when the operator takes the victim down.
    let holdDid = '';
    const { opened: held, open: release } = gate();
    let holding = 0;
    const wrapStore = interceptStore({
      // the held DID misses the cache, so its lookup takes the (held) slow path
      cachedAccountByDid: (own) => (did) => (did === holdDid ? undefined : own(did)),
      getAccountByDid: (own) => async (did) => {
        if (did === holdDid) {
          holding++;
          await held;
        }
        return own(did);
      },
    });
    await withHarness({ wrapStore }, async (h) => {
      const a = await newAccount(h, 0);
      const victim = await newAccount(h, 1);
      h.net.hosts[0].writeRecord(a);
      const aFrames = h.takeFrames(0);
      const c = h.net.hosts[1].writeRecord(victim);
      const cFrames = h.takeFrames(1);
      holdDid = a;
      setTimeout(release, 60_000).unref(); // never hang the harness's close
      const aDone = h.submitAll(aFrames);
      await waitFor(() => holding > 0, "A's lookup held");
      const cDone = h.submitAll(cFrames);
      try {
        // decided: the victim's queue is empty; A's job (its queue and its order
        // place) and the victim's commit (its order place) remain
        await waitFor(() => h.validator.pending === 3, 'the victim commit decided');
      } finally {
        holdDid = '';
      }
      const taken = takeDown({ store: h.store, accounts: h.validator }, victim, 'abuse');
      release();
      await Promise.all([aDone, cDone]);
      const outcome = await taken;
      const all = await h.output(); // visible records only
      const commitSeq = (await h.log.readFrom(0, { includeTakenDown: true })).find(
        (r) => r.uid !== 0 && decodeFrame(r.frame).body.rev === c.rev,
      )?.seq;
      assert.ok(commitSeq !== undefined && outcome.seq !== undefined);
      assert.ok(commitSeq < outcome.seq, 'the commit was appended before the takedown #account');
      assert.equal(
        all.find((e) => e.body.rev === c.rev),
        undefined,
        'the commit decided before the takedown is hidden',
      );
      const last = all.filter((e) => e.body.did === victim || e.body.repo === victim).at(-1);
      assert.deepEqual(last?.body, { ...last?.body, active: false, status: 'takendown' });
    });
  });

  it("stores an upstream status only once the repo's earlier commit is durable and its head stored", async () => {
    // After a crash ingest receives again the frames above the stored cursor
    // and judges them by the stored account: a status from a later frame,
    // stored while an earlier commit's head was not, would drop that commit
    // as inactive and leave the head behind. Head writes are held here.
    let holdHeads = false;
    const { opened: headsReleased, open: releaseHeads } = gate();
    let headWritesHeld = 0;
    const storedRev = new Map<number, string>();
    const statusWrites: { status: string; headRevAtWrite: string | undefined }[] = [];
    const wrapStore = interceptStore({
      updateAccountHeads: (own) => async (updates) => {
        if (holdHeads) {
          headWritesHeld++;
          await headsReleased;
        }
        const out = await own(updates);
        for (const u of updates) storedRev.set(u.uid, u.head.rev);
        return out;
      },
      setAccountUpstreamStatus: (own) => (uid, status) => {
        statusWrites.push({ status, headRevAtWrite: storedRev.get(uid) });
        return own(uid, status);
      },
    });
    await withHarness({ wrapStore }, async (h) => {
      const did = await newAccount(h);
      await h.validator.whenIdle();
      const host = h.net.hosts[0];
      holdHeads = true;
      setTimeout(releaseHeads, 60_000).unref(); // never hang the harness's close
      const c = host.writeRecord(did);
      await h.submitAll(h.takeFrames(0)); // durable: submit resolves at durability
      await waitFor(() => headWritesHeld > 0, "the commit's head write held");
      host.deactivate(did);
      const done = h.submitAll(h.takeFrames(0));
      await waitFor(
        () => statusWrites.length > 0 || h.validator.metrics.accountWritesWaiting > 0,
        'the status written, or waiting',
      );
      releaseHeads();
      await done;
      assert.deepEqual(statusWrites, [{ status: 'deactivated', headRevAtWrite: c.rev }]);
      const out = await h.output();
      assert.deepEqual(
        out.slice(-2).map((e) => [e.t, e.body.rev ?? e.body.status]),
        [
          ['#commit', c.rev],
          ['#account', 'deactivated'],
        ],
      );
    });
  });

  it("retries a failed head write: the repo's next commit still chains (no resync, nothing lost)", async () => {
    let failNext = 0;
    let failed = 0;
    const wrapStore = interceptStore({
      updateAccountHeads: (own) => async (updates) => {
        if (failNext > 0) {
          failNext--;
          failed++;
          throw new Error('connection reset');
        }
        return own(updates);
      },
    });
    await withHarness({ wrapStore }, async (h) => {
      const did = await newAccount(h);
      await h.validator.whenIdle();
      const host = h.net.hosts[0];
      failNext = 1;
      const c1 = host.writeRecord(did);
      await h.submitAll(h.takeFrames(0));
      await waitFor(() => failed === 1, "the first commit's head write failed");
      const c2 = host.writeRecord(did);
      await h.submitAll(h.takeFrames(0));
      await h.validator.whenIdle();
      assert.equal(h.validator.metrics.droppedCount('chain-break'), 0);
      assert.deepEqual(h.validator.metrics.resyncs, { ok: 0, failed: 0 });
      assert.equal(h.validator.metrics.headWriteFailures, 1);
      const revs = (await h.output()).filter((e) => e.t === '#commit').map((e) => e.body.rev);
      assert.deepEqual(revs.slice(-2), [c1.rev, c2.rev]);
      assert.equal((await h.store.getAccountByDid(did))?.head?.rev, c2.rev);
    });
  });

  it('holds submits in flight while too many heads wait for a stalled store, and lets them go once written', async () => {
    let holdHeads = false;
    const { opened: headsReleased, open: releaseHeads } = gate();
    const wrapStore = interceptStore({
      updateAccountHeads: (own) => async (updates) => {
        if (holdHeads) await headsReleased;
        return own(updates);
      },
    });
    await withHarness({ wrapStore, settings: { maxUnwrittenHeads: 2 } }, async (h) => {
      const did = await newAccount(h);
      await h.validator.whenIdle();
      holdHeads = true;
      setTimeout(releaseHeads, 60_000).unref(); // never hang the harness's close
      const host = h.net.hosts[0];
      // two heads may wait: those submits resolve at durability as usual
      for (let i = 0; i < 2; i++) {
        host.writeRecord(did);
        await h.submitAll(h.takeFrames(0));
      }
      assert.equal(h.validator.metrics.headBackpressure, 0);
      const c = host.writeRecord(did);
      let resolved = false;
      const third = h.submitAll(h.takeFrames(0)).then(() => {
        resolved = true;
      });
      await waitFor(() => h.validator.metrics.headBackpressure === 1, 'the third held for its head');
      assert.equal(resolved, false, 'durable, but held in flight while the heads cannot be written');
      releaseHeads();
      await third;
      const out = await h.output();
      assert.equal(out.at(-1)?.body.rev, c.rev);
      assert.equal((await h.store.getAccountByDid(did))?.head?.rev, c.rev);
    });
  });

  it('drops commits of a deactivated account and re-emits its status', () =>
    withHarness({}, async (h) => {
      const did = await newAccount(h);
      const host = h.net.hosts[0];
      host.writeRecord(did);
      const [commit] = h.takeFrames(0);
      host.deactivate(did);
      await h.submitAll(h.takeFrames(0));
      await h.submitAll([commit]);
      assert.equal(h.validator.metrics.droppedCount('inactive-account'), 1);
      const out = await h.output();
      assert.equal(out.at(-1)?.t, '#account');
      assert.equal(out.at(-1)?.body.active, false);
      assert.equal(out.at(-1)?.body.status, 'deactivated');
    }));

  it('keeps a taken-down account inactive whatever the host says', () =>
    withHarness({}, async (h) => {
      const did = await newAccount(h);
      const host = h.net.hosts[0];
      await h.store.setTakedown(did, 'test');
      host.writeRecord(did);
      host.suspend(did);
      host.activate(did); // #identity, #account active, #sync
      await h.submitAll(h.takeFrames(0));
      const m = h.validator.metrics;
      assert.equal(m.droppedCount('inactive-account'), 3, 'commit, identity and sync');
      const accounts = (await h.output()).slice(3);
      assert.deepEqual(types(accounts), ['#account', '#account']);
      for (const a of accounts) assert.deepEqual([a.body.active, a.body.status], [false, 'takendown']);
    }));

  it('follows a migration between two hosts and refuses the old host', () =>
    withHarness({}, async (h) => {
      const did = await newAccount(h, 0);
      h.net.hosts[0].writeRecord(did);
      await h.submitAll(h.takeFrames(0));
      h.net.migrate(did, 1);
      await h.submitAll(h.takeFrames(1)); // #identity, #account active, #sync from the new host
      await h.submitAll(h.takeFrames(0)); // #account deactivated from the old host
      const m = h.validator.metrics;
      assert.equal(m.migrations, 1);
      assert.equal(m.droppedCount('wrong-host'), 1);
      await h.validator.whenIdle();
      const account = await h.store.getAccountByDid(did);
      assert.equal(account?.hostId, h.hostIds[1]);
      assert.equal(account?.upstreamStatus, 'active');
      const write = h.net.hosts[1].writeRecord(did);
      await h.submitAll(h.takeFrames(1));
      const out = await h.output();
      assert.deepEqual(types(out.slice(-4)), ['#identity', '#account', '#sync', '#commit']);
      assert.equal(out.at(-1)?.body.rev, write.rev);
    }));

  it('passes an identity change with a verified handle, and strips a handle that does not resolve back', () =>
    withHarness({}, async (h) => {
      const did = await newAccount(h);
      const other = await newAccount(h);
      const host = h.net.hosts[0];
      host.changeHandle(did, 'good.pds0.test');
      await h.submitAll(h.takeFrames(0));
      host.changeHandle(did, 'bad.pds0.test');
      h.spoofedHandles.set('bad.pds0.test', other);
      await h.submitAll(h.takeFrames(0));
      const ids = (await h.output()).filter((e) => e.t === '#identity' && e.body.did === did);
      assert.equal(ids.at(-2)?.body.handle, 'good.pds0.test');
      assert.equal(ids.at(-1)?.body.handle, undefined);
      assert.equal(h.validator.metrics.unverifiedHandles, 1);
    }));

  it('throttles a new account past its host account limit', () =>
    withHarness({}, async (h) => {
      await newAccount(h, 1);
      await h.store.setHostAccountLimit(h.hostIds[1], 1);
      const did = await newAccount(h, 1);
      await h.validator.whenIdle();
      const account = await h.store.getAccountByDid(did);
      assert.equal(account?.status, 'throttled');
      assert.equal(h.validator.metrics.throttledAccounts, 1);
      const last = (await h.output()).filter((e) => e.body.did === did);
      assert.deepEqual(types(last), ['#account']);
      assert.equal(last[0].body.status, 'throttled');
      assert.equal(h.validator.metrics.droppedCount('inactive-account'), 2, '#identity and #commit');
    }));

  it('does not hold other repos up while one DID resolves', () => {
    const { opened: slowResolved, open: release } = gate();
    let slowDid = '';
    const wrap = (inner: IdentitySource): IdentitySource => ({
      get: (did) => (did === slowDid ? undefined : inner.get(did)),
      purge: (did) => inner.purge(did),
      resolve: async (did, o) => {
        if (did === slowDid) await slowResolved;
        return inner.resolve(did, o);
      },
    });
    return withHarness({ wrapIdentity: wrap }, async (h) => {
      const fast = await newAccount(h, 0);
      slowDid = h.net.createAccount(1);
      h.takeFrames(1);
      h.net.hosts[1].writeRecord(slowDid);
      h.net.hosts[0].writeRecord(fast);
      const slowFrames = h.takeFrames(1);
      const fastFrames = h.takeFrames(0);
      const slowDone = h.submitAll(slowFrames);
      await h.submitAll(fastFrames);
      const before = await h.output();
      assert.equal(before.at(-1)?.body.repo, fast, 'the fast repo passed while the slow DID waits');
      release();
      await slowDone;
      const after = await h.output();
      assert.equal(after.at(-1)?.body.repo, slowDid);
    });
  });

  it('keeps output order equal to input order with two worker threads', () =>
    withHarness({ settings: { workers: 2 } }, async (h) => {
      const dids: string[] = [];
      for (let i = 0; i < 6; i++) dids.push(await newAccount(h, i % 2));
      const base = (await h.output()).length;
      const input = [];
      for (let round = 0; round < 10; round++) {
        for (let i = 0; i < dids.length; i++) h.net.hosts[i % 2].writeRecord(dids[i]);
        input.push(...h.takeFrames(0), ...h.takeFrames(1));
      }
      await h.submitAll(input);
      const out = (await h.output()).slice(base);
      assert.equal(out.length, input.length);
      for (let i = 0; i < input.length; i++)
        assert.ok(bytesEqual(out[i].frame, rewriteSeq(input[i].frame, out[i].seq)));
    }));

  it('settles every submit when closed with work in flight', () =>
    withHarness({ settings: { workers: 1 } }, async (h) => {
      const did = h.net.createAccount(0);
      for (let i = 0; i < 5; i++) h.net.hosts[0].writeRecord(did);
      const settling = Promise.allSettled(h.takeFrames(0).map((f) => h.validator.submit(f)));
      await h.validator.close();
      const settled = await settling;
      assert.equal(settled.length, 8);
      assert.ok(settled.some((r) => r.status === 'rejected'));
      await assert.rejects(h.validator.submit(h.takeFrames(0)[0] ?? ({} as never)), /closed/);
    }));

  it('counts frames it cannot read', () =>
    withHarness({}, async (h) => {
      await h.validator.submit({
        hostId: h.hostIds[0],
        hostname: h.net.hosts[0].hostname,
        upstreamSeq: 1,
        type: '#commit',
        frame: new Uint8Array([0xa1, 0x61, 0x74]),
        receivedAt: 0,
      });
      await h.validator.submit({
        hostId: h.hostIds[0],
        hostname: h.net.hosts[0].hostname,
        upstreamSeq: 2,
        type: '#labels',
        frame: new Uint8Array([1]),
        receivedAt: 0,
      });
      assert.equal(h.validator.metrics.droppedCount('bad-frame'), 1);
      assert.equal(h.validator.metrics.droppedCount('unknown-type'), 1);
    }));
});
