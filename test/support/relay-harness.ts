// Starts a real relay in-process against a simulated network, the way the
// end-to-end tests need it: loopback only, ephemeral ports, the sim's PLC for
// DID resolution and its handle map for handle checks, fsync off (a test
// process is not a power cut), one validation worker.
import assert from 'node:assert/strict';
import type { ReceivedFrame } from '../../sim/consumer.ts';
import type { SimNetwork } from '../../sim/network.ts';
import type { EmittedEvent } from '../../sim/pds.ts';
import { simHandleResolver } from '../../sim/plc.ts';
import { loadConfig, type RelayConfig } from '../../src/config/config.ts';
import { silentLogger } from '../../src/log.ts';
import { cidToString } from '../../src/protocol/cid.ts';
import { Relay, type RelayDeps } from '../../src/relay.ts';
import { TEST_DNS_SERVERS } from './sim-dns.ts';
import { waitFor } from './wait.ts';

export const TEST_ADMIN_PASSWORD = 'test-password';

export function testRelayConfig(
  dataDir: string,
  plcUrl: string,
  extra: Record<string, string> = {},
): RelayConfig {
  return loadConfig({
    env: {
      RELAY_PORT: '0',
      RELAY_METRICS_PORT: '0',
      RELAY_BIND: '127.0.0.1',
      RELAY_DATA_DIR: dataDir,
      RELAY_PLC_URL: plcUrl,
      RELAY_UPSTREAM: 'none',
      RELAY_ALLOW_INSECURE_HOSTS: 'true',
      RELAY_ADMIN_PASSWORD: TEST_ADMIN_PASSWORD,
      RELAY_EVENTLOG_FSYNC: 'false',
      RELAY_VALIDATION_WORKERS: '1',
      // no DNS query leaves the machine (sim-dns.ts)
      RELAY_DNS_SERVERS: TEST_DNS_SERVERS,
      // Run the end-to-end tests on PostgreSQL with e.g.
      // TEST_RELAY_DATABASE_URL=postgres://postgres@127.0.0.1:5432/<fresh database>
      ...(process.env.TEST_RELAY_DATABASE_URL ? { DATABASE_URL: process.env.TEST_RELAY_DATABASE_URL } : {}),
      ...extra,
    },
  });
}

/** A started relay reading the simulated network's PLC; the caller stops it. */
export async function startTestRelay(
  net: SimNetwork,
  dataDir: string,
  extra: Record<string, string> = {},
  deps: RelayDeps = {},
): Promise<Relay> {
  const relay = new Relay(testRelayConfig(dataDir, net.plc.url, extra), silentLogger, {
    handleResolver: { resolve: simHandleResolver(net.plc) },
    ...deps,
  });
  await relay.start();
  return relay;
}

/** Every simulated host asks the relay to crawl it; resolves once all are connected. */
export async function crawlAll(relay: Relay, net: SimNetwork): Promise<void> {
  const base = `http://127.0.0.1:${relay.port}`;
  for (const h of net.hosts) {
    const status = await h.requestCrawl(base);
    if (status !== 200) throw new Error(`requestCrawl of ${h.hostname} answered ${status}`);
  }
  await waitFor(
    () => (relay.hosts?.list() ?? []).filter((h) => h.connected).length === net.hosts.length,
    'hosts connected',
  );
}

/**
 * Resolves once the relay has finished everything the simulated hosts emitted
 * (each host's cursor at the host's head: every frame appended or dropped,
 * durable, and validation idle) and, given a consumer, once that consumer has
 * received the event log up to its head. After this, an event that "would
 * show up later" cannot: there is nothing left in flight.
 */
export async function waitRelayCaughtUp(
  relay: Relay,
  net: SimNetwork,
  consumer?: { seqs(): number[] },
): Promise<void> {
  const cursors = () => new Map((relay.hosts?.list() ?? []).map((h) => [h.hostname, h.cursor]));
  await waitFor(
    () => {
      const c = cursors();
      return net.hosts.every((h) => c.get(h.hostname) === h.seq);
    },
    'relay cursors at every host head',
    {
      describe: () =>
        JSON.stringify(
          net.hosts.map((h) => ({ host: h.hostname, head: h.seq, cursor: cursors().get(h.hostname) })),
        ),
    },
  );
  await relay.validator?.whenIdle();
  if (consumer) {
    const head = relay.eventLog?.head() ?? 0;
    await waitFor(() => (consumer.seqs().at(-1) ?? 0) >= head, `consumer at the log head ${head}`);
  }
}

/** The relay's readiness probe: its HTTP status and what it says (the reasons when not ready). */
export async function readyz(
  relay: Relay,
): Promise<{ status: number; body: { status: string; reasons?: string[] } }> {
  const res = await fetch(`http://127.0.0.1:${relay.port}/_readyz`);
  return { status: res.status, body: (await res.json()) as { status: string; reasons?: string[] } };
}

/** A metric of the relay's registry, summed over its labels (0 when absent). */
export async function relayMetric(relay: Relay, name: string): Promise<number> {
  return (await relay.registry.getSingleMetric(name)?.get())?.values.reduce((n, v) => n + v.value, 0) ?? 0;
}

/** Asserts that every #commit among `emitted` reached the consumer exactly once. */
export function assertEachCommitOnce(
  consumer: { frames: readonly ReceivedFrame[] },
  emitted: EmittedEvent[],
): void {
  const seen = new Map<string, number>();
  for (const f of consumer.frames) {
    const c = f.frame?.body.commit;
    if (c && f.frame?.body.ops)
      seen.set(cidToString(c as never), (seen.get(cidToString(c as never)) ?? 0) + 1);
  }
  for (const e of emitted.filter((x) => x.t === '#commit')) {
    assert.equal(seen.get(cidToString(e.commit!)), 1, `commit ${e.rev} of ${e.did} relayed once`);
  }
}
