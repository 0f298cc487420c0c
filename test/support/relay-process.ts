// Runs the relay as its own process, exactly as `npm start` does
// (src/main.ts, configured through the environment), for tests that must
// SIGKILL it: crash safety can only be tested across a real process death.
// The started log line gives the ports; stdout and stderr are kept (bounded)
// for the failure message.
import { type ChildProcess, spawn } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { TEST_DNS_SERVERS } from './sim-dns.ts';
import { WAIT_DEADLINE_MS } from './wait.ts';

const root = new URL('../..', import.meta.url).pathname;

export interface RelayProcess {
  child: ChildProcess;
  port: number;
  metricsPort: number;
  /** The last lines the process wrote (stdout and stderr), for failure messages. */
  tail(): string;
  /** Resolves with the exit code (null) and signal once the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts `src/main.ts` with `env` (added to this process's environment) and
 * waits for "relay started". `nodeArgs` go before the script (e.g. --cpu-prof).
 * With `compiled`, runs the build in dist/ instead (no TypeScript loader, as
 * `npm start` does; the caller makes sure dist/ is current).
 */
export function spawnRelay(
  env: Record<string, string>,
  nodeArgs: string[] = [],
  opts: { compiled?: boolean } = {},
): Promise<RelayProcess> {
  const script = opts.compiled ? ['dist/src/main.js'] : ['--import', 'tsx', 'src/main.ts'];
  const child = spawn(process.execPath, [...nodeArgs, ...script], {
    cwd: root,
    // no DNS query leaves the machine (sim-dns.ts) unless the test names its own servers
    env: { ...process.env, RELAY_DNS_SERVERS: TEST_DNS_SERVERS, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const keep = (line: string) => {
    if (process.env.ATRELAY_TEST_RELAY_LOG) appendFileSync(process.env.ATRELAY_TEST_RELAY_LOG, `${line}\n`);
    lines.push(line.length > 2000 ? `${line.slice(0, 2000)}…` : line);
    if (lines.length > 200) lines.splice(0, lines.length - 200);
  };
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return new Promise((resolve, reject) => {
    let buf = '';
    let started = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`relay did not start: ${lines.join('\n')}`));
    }, WAIT_DEADLINE_MS);
    child.stderr?.setEncoding('utf8').on('data', (s: string) => {
      for (const l of s.split('\n')) if (l) keep(l);
    });
    child.stdout?.setEncoding('utf8').on('data', (s: string) => {
      buf += s;
      const parts = buf.split('\n');
      buf = parts.pop() ?? '';
      for (const line of parts) {
        keep(line);
        if (started || !line.startsWith('{')) continue;
        let rec: { msg?: string; port?: number; metricsPort?: number };
        try {
          rec = JSON.parse(line);
        } catch {
          continue;
        }
        if (rec.msg === 'relay started') {
          started = true;
          clearTimeout(timer);
          resolve({
            child,
            port: rec.port as number,
            metricsPort: rec.metricsPort as number,
            tail: () => lines.join('\n'),
            exited,
          });
        }
      }
    });
    void exited.then(({ code, signal }) => {
      if (started) return;
      clearTimeout(timer);
      reject(new Error(`relay exited (${code ?? signal}) before starting: ${lines.join('\n')}`));
    });
  });
}
