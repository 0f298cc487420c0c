// Finds a Chromium for the browser tests (playwright-core drives it; it
// downloads no browser of its own): $CHROMIUM_PATH, else Debian's
// /usr/bin/chromium or another usual path. When none is there and the test
// runs as root on a Debian-like system, it installs Debian's package once
// (`apt-get install -y chromium`, as .ci/run does), so a fresh machine
// passes; otherwise it says why the browser tests are skipped.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const CANDIDATES = [
  '/usr/bin/chromium',
  '/usr/bin/chromium-browser',
  '/usr/bin/google-chrome',
  '/usr/bin/google-chrome-stable',
  '/snap/bin/chromium',
];

function present(): string | undefined {
  const fromEnv = process.env.CHROMIUM_PATH;
  if (fromEnv) return existsSync(fromEnv) ? fromEnv : undefined;
  return CANDIDATES.find((p) => existsSync(p));
}

/** The Chromium executable, or `{ skip }` with the reason the browser tests cannot run. */
export function findChromium(): { path: string } | { skip: string } {
  const found = present();
  if (found) return { path: found };
  if (process.env.CHROMIUM_PATH) return { skip: `CHROMIUM_PATH=${process.env.CHROMIUM_PATH} does not exist` };
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  const apt = existsSync('/usr/bin/apt-get');
  if (!root || !apt) {
    return {
      skip: `no Chromium found (${CANDIDATES[0]}); install it with \`apt-get install chromium\` or set CHROMIUM_PATH (not root or no apt-get, so the test cannot install it)`,
    };
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const opts = { stdio: 'inherit' as const, env, timeout: 15 * 60_000 };
  spawnSync('apt-get', ['update'], opts);
  const r = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'chromium'], opts);
  const installed = present();
  if (installed) return { path: installed };
  return { skip: `apt-get install chromium failed (exit ${r.status ?? r.signal})` };
}

/**
 * Flags for every test browser. Besides what a headless container needs,
 * Chromium must not reach the network on its own: left alone it looks up
 * and calls Google's services (autofill, accounts, component updates) in the
 * background, DNS queries that leave the machine. The resolver rule answers
 * every name but loopback's "not found" inside Chromium, so no query is sent
 * whatever a feature tries; the other flags switch those features off.
 */
export const CHROMIUM_ARGS: readonly string[] = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1, EXCLUDE localhost',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-domain-reliability',
  '--disable-client-side-phishing-detection',
  '--disable-features=AutofillServerCommunication,OptimizationHints,MediaRouter,Translate',
  '--no-first-run',
  '--no-default-browser-check',
  '--no-pings',
];
