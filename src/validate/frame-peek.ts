// Reads the account DID of an event frame (`repo` of #commit, `did` of the
// other types) without decoding the frame. The main thread needs the DID of
// every event before anything else (it picks the repo's queue and the signing
// key to send to a worker with the frame), but a full decode of a 3 KB commit
// is exactly the CPU work the worker pool exists to take off the main thread.
// So this walks the frame with the bounded scanner (protocol/cbor-scan.ts),
// skipping values without building them, and decodes only the one text
// string it is after, and only up to 2 KB of it.
//
// The DID it returns is the key of the identity cache and goes into logs, so
// it must be one: DID syntax, at most 2 KB (issue 12: a 4 MB `repo` used to
// become a negative cache entry). A frame this cannot read, or whose DID is
// not valid, gets undefined; the caller then drops it, and the worker's full
// decode says precisely what is wrong. Ingest checks the same on arrival
// (ingest/frame-check.ts); this is the validator's own guard for frames from
// any other source.
import { CborScanner, MAJOR_TEXT } from '../protocol/cbor-scan.ts';
import {
  MAX_DID_LENGTH,
  MAX_EVENT_DEPTH,
  MAX_EVENT_ITEMS,
  MAX_FRAME_BYTES,
  MAX_FRAME_HEADER_BYTES,
} from '../protocol/events.ts';
import { isValidDid } from '../protocol/syntax.ts';

const HEADER_LIMITS = { maxDepth: 1, maxItems: 5, maxStringBytes: MAX_FRAME_HEADER_BYTES };
const BODY_LIMITS = { maxDepth: MAX_EVENT_DEPTH, maxItems: MAX_EVENT_ITEMS, maxStringBytes: MAX_FRAME_BYTES };

/** The DID the event is about, or undefined when the frame cannot be read that far or the DID is not valid. */
export function peekEventDid(frame: Uint8Array, type: string): string | undefined {
  const field = type === '#commit' ? 'repo' : 'did';
  try {
    const header = new CborScanner(frame, HEADER_LIMITS, 0, Math.min(frame.length, MAX_FRAME_HEADER_BYTES));
    const bodyStart = header.skip();
    const body = new CborScanner(frame, BODY_LIMITS, bodyStart);
    if (!body.findMapKey(field) || body.peekMajor() !== MAJOR_TEXT) return undefined;
    const { text, truncated } = body.readTextPrefix(MAX_DID_LENGTH);
    return !truncated && isValidDid(text) ? text : undefined;
  } catch {
    return undefined;
  }
}
