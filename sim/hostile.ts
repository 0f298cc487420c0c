// Hostile-host knobs for a simulated PDS (issue 12): a host that, on demand,
// sends what a hostile PDS could send a relay crawling it, so integration
// tests can check that the relay keeps serving everyone else while it is
// attacked. Every SimPds has them (`pds.hostile`); a host that is never told
// to attack behaves exactly as before.
//
// Frames (`send` once, or `flood` every subscriber, present and future, until
// `stopFlood`): events with giant DIDs, a header or a body nested millions
// deep, `#info` and error-frame floods, garbage (optionally mixed with the
// host's own valid events), and frames over the 5 MB message limit. A flood
// paces itself on each socket's buffer (it never queues more than a few MB in
// this process), optionally at a rate and a cap per connection, and starts
// again on every new connection, so the relay's disconnect and back-off are
// what stops it. Hostile frames never take a seq: the host's real events
// keep their sequence, as with the transport faults (faults.ts).
//
// Repos: `carBombs` makes every account's getRepo serve a CAR bomb
// (hostile-repo.ts: hundreds of thousands of tiny blocks, a body over the
// size limit with or without a declared length), and `breakChain` emits a
// commit whose prevData breaks the account's sync 1.1 chain on purpose, so
// the relay has to resync the repo and download the bomb.
import type { WebSocket } from 'ws';
import { concatBytes } from '../src/protocol/bytes.ts';
import { encodeCbor } from '../src/protocol/cbor.ts';
import { encodeErrorFrame, encodeFrame } from '../src/protocol/frames.ts';
import { malformedCborFrame, oversizedCommitFrame, truncateFrame } from './faults.ts';
import { type CarBombKind, type CarBombOptions, carBomb } from './hostile-repo.ts';
import type { EmittedEvent, SimPds } from './pds.ts';

export const HOSTILE_FRAME_KINDS = [
  'giantDid', // a #commit whose repo DID is megabytes long
  'nestedHeader', // a header that is an array nested millions deep
  'nestedBody', // a #commit whose body holds an array nested a million deep
  'infoFlood', // #info frames, as many as the socket takes
  'errorFlood', // error frames (op -1) with long messages
  'garbage', // bytes that are not a frame: random-looking, malformed CBOR, cut-off commits
  'oversize', // a #commit frame over the 5 MB message limit
] as const;

export type HostileFrameKind = (typeof HOSTILE_FRAME_KINDS)[number];

export interface HostileFrameOptions {
  /**
   * How big the hostile part is: giantDid: DID length (default 4 MiB);
   * nestedHeader: nesting levels (default 4,000,000); nestedBody: nesting
   * levels (default 1,000,000); oversize: frame bytes (default 5.5 MiB);
   * infoFlood / errorFlood: message length (default 1,000 / 5,000).
   */
  size?: number;
}

export interface FloodOptions extends HostileFrameOptions {
  /** Frames per second on each connection at most (default: as fast as the socket drains). */
  perSecond?: number;
  /** The most hostile frames sent on one connection (default: no limit). */
  perConnection?: number;
  /** After every `validEvery` hostile frames the host emits one valid commit of its own (default: never). */
  validEvery?: number;
  /** Bytes buffered on a socket before the flood waits for it to drain (default 2 MiB, at least one frame). */
  highWaterBytes?: number;
}

/** `n` one-item arrays nested around a 0. */
function nestedArrays(n: number): Uint8Array {
  const b = new Uint8Array(n + 1);
  b.fill(0x81, 0, n);
  return b;
}

/**
 * One hostile frame of `kind`. `seq` is the seq it claims where it has one
 * (use the host's next seq, so nothing but the hostile part is wrong);
 * `variant` picks among the garbage shapes.
 */
export function hostileFrame(
  kind: HostileFrameKind,
  seq: number,
  opts: HostileFrameOptions = {},
  variant = 0,
): Uint8Array {
  switch (kind) {
    case 'giantDid':
      return encodeFrame('#commit', {
        seq,
        repo: `did:plc:${'a'.repeat(opts.size ?? 4 * 1024 * 1024)}`,
        rev: '3l3qo2vutsw2b',
        since: null,
        ops: [],
        blobs: [],
        blocks: new Uint8Array(0),
        rebase: false,
        tooBig: false,
        time: new Date().toISOString(),
      });
    case 'nestedHeader':
      // where the header map should be: [[[[…0…]]]], then a plausible body
      return concatBytes([
        nestedArrays(opts.size ?? 4_000_000),
        encodeCbor({ seq, repo: 'did:plc:aaaaaaaaaaaaaaaaaaaaaaaa' }),
      ]);
    case 'nestedBody':
      // {x: [[[[…]]]], seq, repo}: the real fields come after the nesting
      return concatBytes([
        encodeCbor({ op: 1, t: '#commit' }),
        Uint8Array.of(0xa3, 0x61, 0x78),
        nestedArrays(opts.size ?? 1_000_000),
        encodeCbor('seq'),
        encodeCbor(seq),
        encodeCbor('repo'),
        encodeCbor('did:plc:aaaaaaaaaaaaaaaaaaaaaaaa'),
      ]);
    case 'infoFlood':
      return encodeFrame('#info', { name: 'OutdatedCursor', message: 'i'.repeat(opts.size ?? 1000) });
    case 'errorFlood':
      return encodeErrorFrame('ConsumerTooSlow', 'e'.repeat(opts.size ?? 5000));
    case 'garbage': {
      const shape = variant % 3;
      if (shape === 0) return Uint8Array.from({ length: 64 }, (_, i) => (i * 73 + 0xff) & 0xff);
      if (shape === 1) return malformedCborFrame();
      return truncateFrame(
        encodeFrame('#commit', { seq, repo: 'did:plc:aaaaaaaaaaaaaaaaaaaaaaaa', rev: 'x', ops: [] }),
      );
    }
    case 'oversize':
      return oversizedCommitFrame('did:plc:aaaaaaaaaaaaaaaaaaaaaaaa', seq, '3l3qo2vutsw2b', opts.size);
  }
}

interface ConnectionState {
  sent: number;
  tokens: number;
  refilledAt: number;
}

interface Flood {
  kind: HostileFrameKind;
  opts: FloodOptions;
  /** the frames to send, built once (a giant frame costs milliseconds to encode) */
  frames: Uint8Array[];
  highWater: number;
  timer: NodeJS.Timeout;
  connections: WeakMap<WebSocket, ConnectionState>;
  sinceValid: number;
}

const FLOOD_TICK_MS = 5;
/** At most this many frames per connection per tick: 51,200 frames/s. */
const FLOOD_FRAMES_PER_TICK = 256;

/** The hostile side of one simulated PDS. */
export class HostileKnobs {
  /** Hostile frames sent, by kind. */
  readonly sent: Record<HostileFrameKind, number> = {
    giantDid: 0,
    nestedHeader: 0,
    nestedBody: 0,
    infoFlood: 0,
    errorFlood: 0,
    garbage: 0,
    oversize: 0,
  };
  /** Connections a flood has sent at least one frame on. */
  floodedConnections = 0;
  /** Valid commits emitted between flood frames (`validEvery`). */
  validEmitted = 0;
  /** Commits emitted by breakChain. */
  readonly brokenChains: EmittedEvent[] = [];
  private flooding: Flood | null = null;
  private chainTimer: NodeJS.Timeout | null = null;

  constructor(private readonly pds: SimPds) {}

  /** Sends `count` hostile frames of `kind` to every current subscriber now. */
  send(kind: HostileFrameKind, count = 1, opts: HostileFrameOptions = {}): void {
    for (let i = 0; i < count; i++) {
      this.pds.firehose.sendRaw(hostileFrame(kind, this.pds.seq + 1, opts, i));
      this.sent[kind]++;
    }
  }

  /**
   * Floods every subscriber, present and future, with `kind` until
   * stopFlood() (one flood at a time; a new one replaces the old).
   */
  flood(kind: HostileFrameKind, opts: FloodOptions = {}): void {
    this.stopFlood();
    const variants = kind === 'garbage' ? 3 : 1;
    const frames = Array.from({ length: variants }, (_, v) => hostileFrame(kind, this.pds.seq + 1, opts, v));
    const largest = Math.max(...frames.map((f) => f.length));
    const flood: Flood = {
      kind,
      opts,
      frames,
      highWater: Math.max(opts.highWaterBytes ?? 2 * 1024 * 1024, largest),
      timer: setInterval(() => this.pump(flood), FLOOD_TICK_MS),
      connections: new WeakMap(),
      sinceValid: 0,
    };
    flood.timer.unref();
    this.flooding = flood;
    this.pump(flood);
  }

  get floodKind(): HostileFrameKind | null {
    return this.flooding?.kind ?? null;
  }

  stopFlood(): void {
    if (this.flooding) clearInterval(this.flooding.timer);
    this.flooding = null;
  }

  private pump(flood: Flood): void {
    if (this.flooding !== flood) return;
    const now = performance.now();
    const { perSecond, perConnection = Number.POSITIVE_INFINITY, validEvery } = flood.opts;
    for (const ws of this.pds.firehose.sockets()) {
      let c = flood.connections.get(ws);
      if (!c) {
        c = { sent: 0, tokens: perSecond === undefined ? 0 : Math.min(perSecond, 1), refilledAt: now };
        flood.connections.set(ws, c);
      }
      if (perSecond !== undefined) {
        c.tokens = Math.min(perSecond, c.tokens + ((now - c.refilledAt) * perSecond) / 1000);
        c.refilledAt = now;
      }
      // A loopback socket may take every write at once (bufferedAmount stays
      // 0 while the peer reads): a tick also stops after highWater bytes or
      // FLOOD_FRAMES_PER_TICK frames, so this process stays responsive.
      let bytesThisTick = 0;
      let framesThisTick = 0;
      while (
        ws.readyState === ws.OPEN &&
        ws.bufferedAmount < flood.highWater &&
        bytesThisTick < flood.highWater &&
        framesThisTick++ < FLOOD_FRAMES_PER_TICK &&
        c.sent < perConnection &&
        (perSecond === undefined || c.tokens >= 1)
      ) {
        if (c.sent === 0) this.floodedConnections++;
        const frame = flood.frames[c.sent % flood.frames.length];
        ws.send(frame, { binary: true, compress: false });
        bytesThisTick += frame.length;
        c.sent++;
        if (perSecond !== undefined) c.tokens--;
        this.sent[flood.kind]++;
        if (validEvery && ++flood.sinceValid >= validEvery) {
          flood.sinceValid = 0;
          this.emitValid();
        }
      }
    }
  }

  /** One valid commit by one of the host's active accounts (none: nothing). */
  private emitValid(): void {
    const active = [...this.pds.accounts.values()].filter((a) => a.status === 'active');
    if (active.length === 0) return;
    this.pds.writeRecord(active[this.validEmitted % active.length].did);
    this.validEmitted++;
  }

  /**
   * From now on getRepo of every account on this host serves a CAR bomb of
   * `kind` (hostile-repo.ts `carBomb`); accounts with their own override in
   * `pds.hostileRepos` keep it. `carBombs(null)` serves the real repos again.
   */
  carBombs(kind: CarBombKind | null, opts: CarBombOptions = {}): void {
    this.pds.hostileRepos.setDefault(kind === null ? null : carBomb(kind, opts));
  }

  /**
   * A commit whose prevData does not name the previous commit's data: a relay
   * that checks the sync 1.1 chain must resync the repo (getRepo).
   */
  breakChain(did: string): EmittedEvent {
    this.pds.injectFault('brokenPrevData');
    const ev = this.pds.writeRecord(did);
    this.brokenChains.push(ev);
    return ev;
  }

  /**
   * Breaks the chain of each of `dids` in turn, `perSecond` of them a second
   * (the relay resyncs each, once per retry interval), until every one is
   * broken or stop() is called.
   */
  breakChains(dids: readonly string[], perSecond: number): void {
    if (this.chainTimer) clearInterval(this.chainTimer);
    let i = 0;
    this.chainTimer = setInterval(() => {
      if (i >= dids.length) {
        if (this.chainTimer) clearInterval(this.chainTimer);
        this.chainTimer = null;
        return;
      }
      const did = dids[i++];
      if (this.pds.accounts.get(did)?.status === 'active') this.breakChain(did);
    }, 1000 / perSecond);
    this.chainTimer.unref();
  }

  /** Ends every hostile activity: the flood and chain breaking (CAR bombs stay set). */
  stop(): void {
    this.stopFlood();
    if (this.chainTimer) clearInterval(this.chainTimer);
    this.chainTimer = null;
  }
}
