// Starts a real relay in-process against a simulated network, the way the
// end-to-end tests need it: loopback only, ephemeral ports, the sim's PLC for
// DID resolution and its handle map for handle checks, fsync off (a test
// process is not a power cut), one validation worker.
import type { SimNetwork } from '../sim/network.ts';
import { simHandleResolver } from '../sim/plc.ts';
import { loadConfig, type RelayConfig } from '../src/config/config.ts';
import { silentLogger } from '../src/log.ts';
import { Relay } from '../src/relay.ts';

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
): Promise<Relay> {
  const relay = new Relay(testRelayConfig(dataDir, net.plc.url, extra), silentLogger, {
    handleResolver: { resolve: simHandleResolver(net.plc) },
  });
  await relay.start();
  return relay;
}

export async function waitUntil(
  cond: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 20000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Every simulated host asks the relay to crawl it; resolves once all are connected. */
export async function crawlAll(relay: Relay, net: SimNetwork): Promise<void> {
  const base = `http://127.0.0.1:${relay.port}`;
  for (const h of net.hosts) {
    const status = await h.requestCrawl(base);
    if (status !== 200) throw new Error(`requestCrawl of ${h.hostname} answered ${status}`);
  }
  await waitUntil(
    () => (relay.hosts?.list() ?? []).filter((h) => h.connected).length === net.hosts.length,
    'hosts connected',
  );
}
