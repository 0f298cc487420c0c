// Runs the real entry point (`src/main.ts`, as `npm start` does) in a child
// process for tests that must see the process itself: that it keeps running
// after a hostile request, or how it exits. The relay logs JSON lines on
// stdout; tests wait for a log message (and read ports from it) rather than
// for time.
import { type ChildProcess, spawn } from 'node:child_process';
import { TEST_DNS_SERVERS } from './sim-dns.ts';
import { WAIT_DEADLINE_MS } from './wait.ts';

const root = new URL('../..', import.meta.url).pathname;

export interface MainProcess {
  child: ChildProcess;
  /** Every JSON log record seen on stdout so far. */
  logs: Record<string, unknown>[];
  /** Everything seen on stderr so far. */
  stderr(): string;
  /** Resolves with the first log record whose `msg` is `msg` (already seen or still to come). */
  waitForLog(msg: string): Promise<Record<string, unknown>>;
  /** Resolves with the exit code once the process has exited. */
  exitCode(): Promise<number | null>;
  /** True while the process runs. */
  alive(): boolean;
}

/** `preload`: modules imported before the entry point (e.g. test/fixtures/inject-fault.ts). */
export function startMain(env: Record<string, string>, preload: readonly string[] = []): MainProcess {
  const imports = preload.flatMap((p) => ['--import', p]);
  const child = spawn(process.execPath, ['--import', 'tsx', ...imports, 'src/main.ts'], {
    cwd: root,
    // no DNS query leaves the machine (sim-dns.ts) unless the test names its own servers
    env: { ...process.env, RELAY_UPSTREAM: 'none', RELAY_DNS_SERVERS: TEST_DNS_SERVERS, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let pending = '';
  let stderr = '';
  const waiters: { msg: string; resolve: (r: Record<string, unknown>) => void }[] = [];
  child.stdout?.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      const rec = JSON.parse(line) as Record<string, unknown>;
      logs.push(rec);
      for (const w of waiters.filter((w) => w.msg === rec.msg)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(rec);
      }
    }
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    logs,
    stderr: () => stderr,
    alive: () => child.exitCode === null && child.signalCode === null,
    exitCode: () => exited,
    waitForLog: (msg) => {
      const seen = logs.find((r) => r.msg === msg);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`timed out waiting for log "${msg}"; stderr: ${stderr}`)),
          WAIT_DEADLINE_MS,
        );
        waiters.push({
          msg,
          resolve: (r) => {
            clearTimeout(timer);
            resolve(r);
          },
        });
        void exited.then((code) => {
          clearTimeout(timer);
          reject(new Error(`exited with ${code} before log "${msg}"; stderr: ${stderr}`));
        });
      });
    },
  };
}
