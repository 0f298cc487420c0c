// A host's allowance of bad frames (malformed, too large, too deep, bad DID,
// unknown or deprecated type, repeated #info, …): a token bucket of
// `perMinute` tokens refilled at `perMinute` per minute, one token per bad
// frame. The frame that empties it is the one that gets the host
// disconnected (HostSubscriber); the bucket is the subscriber's, not the
// connection's, so a host that reconnects after a disconnect for garbage
// starts with what has refilled since, and a second burst ends the new
// connection at once. Refill is computed from timestamps, so an idle host
// costs nothing.

export class BadFrameAllowance {
  private tokens: number;
  private refilledAt: number;

  constructor(
    readonly perMinute: number,
    now: number,
  ) {
    this.tokens = perMinute;
    this.refilledAt = now;
  }

  /** Counts one bad frame; true when the allowance is used up (disconnect the host). */
  spend(now: number): boolean {
    this.tokens = Math.min(this.perMinute, this.tokens + ((now - this.refilledAt) * this.perMinute) / 60_000);
    this.refilledAt = now;
    this.tokens = Math.max(0, this.tokens - 1);
    return this.tokens < 1;
  }
}
