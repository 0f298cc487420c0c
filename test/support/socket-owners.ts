// The two owners of host sockets (src/ingest/upstream-socket.ts): the main
// thread, and the verify pool's workers (src/ingest/socket-threads.ts). Ingest
// tests that are about what a host sends run against both, so the worker
// path keeps every guarantee the main-thread one has.
import { SocketThreads } from '../../src/ingest/socket-threads.ts';
import type { UpstreamDialer } from '../../src/ingest/upstream-socket.ts';
import { VerifyPool } from '../../src/validate/pool.ts';

export interface SocketOwner {
  name: string;
  /** For HostManagerOptions.dial (undefined: the main thread). */
  readonly dial: UpstreamDialer | undefined;
  /**
   * Bytes each connection may read past a pause, beyond the frame-budget's
   * own overshoot (frame-budget.ts): 0 on the main thread (the pause is
   * synchronous), one credit window plus the frame that crosses it on a
   * socket thread.
   */
  readAhead(maxFrameBytes: number): number;
  start(): void;
  stop(): Promise<void>;
}

export function socketOwners(): SocketOwner[] {
  let pool: VerifyPool | undefined;
  const threads = new SocketThreads();
  return [
    {
      name: 'sockets on the main thread',
      dial: undefined,
      readAhead: () => 0,
      start() {},
      async stop() {},
    },
    {
      name: 'sockets on a worker thread',
      dial: threads.dial,
      readAhead: (maxFrameBytes) => threads.windowBytes + maxFrameBytes,
      start() {
        pool = new VerifyPool({ size: 1, socketThreads: threads });
      },
      async stop() {
        await pool?.close();
      },
    },
  ];
}
