// Takedown hides of the JetStream event log (nats-log.ts), shared by every
// process: a KV bucket beside the stream (`<stream>-takedowns`), key = the
// account uid, value = the highest hidden relay seq; a deleted key shows the
// account again. Each process loads the bucket at open and watches it, so a
// hide made by an ingest process (or through any process's admin API)
// applies to every fan-out node's replays, and survives every restart.
// A change applies locally at once; the promise resolves once it is stored.
import type { KV } from '@nats-io/kv';
import { type Logger, silentLogger } from '../log.ts';

export class SharedTakedowns {
  private readonly upTo = new Map<number, number>();
  private stopWatch?: () => void;
  private watching: Promise<void> = Promise.resolve();
  private stopped = false;
  private readonly log: Logger;

  constructor(
    private readonly kv: KV,
    logger?: Logger,
  ) {
    this.log = (logger ?? silentLogger).child({ module: 'eventlog-nats-takedowns' });
  }

  /** Starts the watch (updates), then reads every stored hide. */
  async load(): Promise<void> {
    const watcher = await this.kv.watch({ include: 'updates' as never });
    this.stopWatch = () => watcher.stop();
    this.watching = (async () => {
      for await (const e of watcher) {
        if (e.operation === 'PUT') this.apply(e.key, new TextDecoder().decode(e.value));
        else this.apply(e.key, undefined);
      }
    })().catch((err) => {
      if (!this.stopped) this.log.warn({ err }, 'takedown watch stopped');
    });
    for await (const k of await this.kv.keys()) {
      const e = await this.kv.get(k);
      if (e?.operation === 'PUT') this.apply(k, e.string());
    }
  }

  private apply(key: string, value: string | undefined): void {
    const uid = Number(key);
    if (!Number.isSafeInteger(uid)) return;
    if (value === undefined) {
      this.upTo.delete(uid);
      return;
    }
    const seq = Number(value);
    if (Number.isSafeInteger(seq)) this.upTo.set(uid, seq);
  }

  /** Hides in this process only (until the exact bound is known and stored). */
  hideLocally(uid: number, upToSeq: number): void {
    this.upTo.set(uid, upToSeq);
  }

  async hide(uid: number, upToSeq: number): Promise<void> {
    this.upTo.set(uid, upToSeq);
    await this.kv.put(String(uid), String(upToSeq));
  }

  async show(uid: number): Promise<void> {
    this.upTo.delete(uid);
    await this.kv.delete(String(uid));
  }

  hides(uid: number, seq: number): boolean {
    const upTo = this.upTo.get(uid);
    return upTo !== undefined && seq <= upTo;
  }

  stop(): void {
    this.stopped = true;
    this.stopWatch?.();
  }

  /** Resolves once the watch has ended (after stop and the connection closing). */
  done(): Promise<void> {
    return this.watching;
  }
}
