// A FIFO concurrency limiter: at most `maxConcurrent` tasks run at once and
// the rest wait in a bounded queue. Identity resolution uses it so a burst of
// thousands of unknown DIDs (a relay restart, a new PDS joining) turns into a
// steady stream of requests instead of thousands of sockets at once, while
// every caller still gets its own promise and none blocks another. The queue
// is an array with a moving head so dequeuing stays O(1) at any length.

export class QueueFullError extends Error {
  constructor(readonly limit: number) {
    super(`resolution queue is full (${limit} waiting)`);
    this.name = 'QueueFullError';
  }
}

export class ConcurrencyLimiter {
  private running = 0;
  private queue: Array<() => void> = [];
  private head = 0;

  constructor(
    readonly maxConcurrent: number,
    readonly maxQueued: number = Number.POSITIVE_INFINITY,
  ) {
    if (!(maxConcurrent >= 1)) throw new RangeError('maxConcurrent must be at least 1');
  }

  get active(): number {
    return this.running;
  }

  get waiting(): number {
    return this.queue.length - this.head;
  }

  /** Runs `task` when a slot is free; rejects with QueueFullError when the queue is at its limit. */
  run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running < this.maxConcurrent) return this.start(task);
    if (this.waiting >= this.maxQueued) return Promise.reject(new QueueFullError(this.maxQueued));
    return new Promise<T>((resolve, reject) => {
      this.queue.push(() => {
        this.start(task).then(resolve, reject);
      });
    });
  }

  private async start<T>(task: () => Promise<T>): Promise<T> {
    this.running++;
    try {
      return await task();
    } finally {
      this.running--;
      this.next();
    }
  }

  private next(): void {
    if (this.head >= this.queue.length) return;
    const job = this.queue[this.head];
    this.queue[this.head] = undefined as unknown as () => void;
    this.head++;
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    job();
  }
}
