// The boundary between ingest and validation. Ingest reads frames from each
// host's socket and hands every frame of a known, current message type to a
// FrameSink; the sink (validation → sequencer) says when the frame is
// finished: durably appended to the event log, or definitively dropped. Ingest
// keeps a bounded number of unfinished frames per host (back-pressure beyond
// that: it stops reading the socket) and advances the host's cursor only past
// frames that are finished, so a crash re-reads a few seconds of events and
// never skips one.
import type { SeqSpan } from '../protocol/frames.ts';
import type { InPlaceLearner } from './upstream-socket.ts';

export interface InboundFrame {
  /** Metadata-store id of the host the frame came from. */
  hostId: number;
  /** Normalised hostname (for logs and metrics labels). */
  hostname: string;
  /** The upstream `seq` of the frame (strictly increasing per connection; checked by ingest). */
  upstreamSeq: number;
  /** Message type from the frame header: `#commit`, `#sync`, `#identity` or `#account`. */
  type: string;
  /** The frame exactly as received (header + body). */
  frame: Uint8Array;
  /**
   * The account DID, read (and checked: DID syntax, at most 2 KB) by ingest's
   * one pass over the frame (frame-check.ts), so validation does not walk the
   * frame again. Absent when the frame comes from elsewhere (tests, tools).
   */
  did?: string;
  /** Where the frame's `seq` is encoded, from the same pass (rewriteSeq need not look for it). */
  seqSpan?: SeqSpan;
  /**
   * Nobody else holds the frame's buffer (ingest copied it out of the socket
   * chunk or `ws` allocated it for this message): validation may move it to a
   * worker thread and back instead of copying it.
   */
  owned?: boolean;
  /** `performance.now()` when the frame was read, for ingest-to-broadcast latency. */
  receivedAt: number;
  /**
   * What the socket thread that read the frame did with it on the way
   * (ingest/socket-wire.ts InPlaceWork: a verdict of the stateless checks,
   * validate/in-place.ts); ingest passes it on unread.
   */
  inPlace?: unknown;
  /** Teaches that socket thread (an account's signing key, validate/in-place.ts). */
  learner?: InPlaceLearner;
}

export interface FrameSink {
  /**
   * Hands a frame on. Resolves once the frame is finished (appended durably or
   * dropped); rejects only when the sink is shutting down or broken, in which
   * case ingest must not advance the cursor past this frame.
   */
  submit(frame: InboundFrame): Promise<void>;
}
