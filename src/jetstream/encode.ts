// Turns one event of the relay's log into the JSON messages Bluesky's
// Jetstream (v1 wire, `GET /subscribe`) sends for it: one message per record
// operation of a #commit, one for an #identity, one for an #account; #sync
// and #info send none (Jetstream v1 emits neither). Shapes, field order and
// names follow Jetstream's Go models:
//
//   {"did","time_us","kind":"commit","commit":{"rev","operation","collection","rkey","record","cid"}}
//   {"did","time_us","kind":"identity","identity":{"did","handle"?,"seq","time"}}
//   {"did","time_us","kind":"account","account":{"active","did","seq","status"?,"time"}}
//
// Records come from the commit's own blocks, which the relay verified before
// the event entered the log, so the CAR is walked without hashing again;
// DAG-CBOR becomes atproto JSON (`$link`, `$bytes`; protocol/data-model.ts).
// Each message is laid out once as a complete WebSocket text frame, so every
// subscriber that wants it writes the same bytes (server.ts): encoding is
// per event, never per subscriber. Anything that does not decode is counted
// and skipped, never thrown at the stream.

import { writeWsHeader, wsHeaderSize } from '../firehose/ws-frame.ts';
import { BlockMap } from '../protocol/car.ts';
import { decodeCbor } from '../protocol/cbor.ts';
import { CidLinkWrapper, cidToString, isCid } from '../protocol/cid.ts';
import { dataToJson } from '../protocol/data-model.ts';
import { decodeFrame } from '../protocol/frames.ts';

export type JetstreamKind = 'commit' | 'identity' | 'account';

/** One JSON message, framed once, shared by every subscriber that selects it. */
export interface JetstreamMessage {
  kind: JetstreamKind;
  did: string;
  /** The record's collection (commit messages only). */
  collection?: string;
  /** Bytes of the JSON text (what maxMessageSizeBytes compares). */
  jsonBytes: number;
}

/** The messages of one log event, laid out back to back as WebSocket text frames. */
export interface EncodedEvent {
  seq: number;
  timeUs: number;
  messages: JetstreamMessage[];
  /** All frames back to back; frame i is buf[offsets[i], offsets[i+1]). */
  buf: Buffer;
  offsets: number[];
}

/** Why an event (or one of its operations) produced no message. */
export type EncodeSkip = 'bad_frame' | 'missing_block' | 'bad_record';

const EMPTY = Buffer.alloc(0);

/**
 * Which messages to build at all (a replaying subscriber's filter, so that
 * it does not decode records it will not send); absent: every message (the
 * shared live encode).
 */
export type MessagePrefilter = (kind: JetstreamKind, did: string, collection?: string) => boolean;

/**
 * The Jetstream messages of one event (frame = the relay's CBOR frame).
 * `onSkip` hears about what could not be encoded.
 */
export function encodeEvent(
  seq: number,
  timeUs: number,
  frame: Uint8Array,
  onSkip?: (reason: EncodeSkip) => void,
  prefilter?: MessagePrefilter,
): EncodedEvent {
  const texts: string[] = [];
  const messages: JetstreamMessage[] = [];
  try {
    const { header, body } = decodeFrame(frame);
    if (header.op === 1) {
      switch (header.t) {
        case '#commit':
          encodeCommit(body, timeUs, texts, messages, onSkip, prefilter);
          break;
        case '#identity':
        case '#account': {
          const kind = header.t === '#identity' ? 'identity' : 'account';
          if (!prefilter || (typeof body.did === 'string' && prefilter(kind, body.did)))
            encodeRepoEvent(kind, body, timeUs, texts, messages);
          break;
        }
      }
    }
  } catch {
    onSkip?.('bad_frame');
    texts.length = 0;
    messages.length = 0;
  }
  return frameTexts(seq, timeUs, texts, messages);
}

function frameTexts(
  seq: number,
  timeUs: number,
  texts: string[],
  messages: JetstreamMessage[],
): EncodedEvent {
  if (texts.length === 0) return { seq, timeUs, messages: [], buf: EMPTY, offsets: [0] };
  let total = 0;
  for (let i = 0; i < texts.length; i++) {
    const n = Buffer.byteLength(texts[i]);
    messages[i].jsonBytes = n;
    total += wsHeaderSize(n) + n;
  }
  const buf = Buffer.allocUnsafe(total);
  const offsets = new Array<number>(texts.length + 1);
  let off = 0;
  for (let i = 0; i < texts.length; i++) {
    offsets[i] = off;
    off = writeWsHeader(buf, off, messages[i].jsonBytes, 0x1);
    off += buf.write(texts[i], off);
  }
  offsets[texts.length] = off;
  return { seq, timeUs, messages, buf, offsets };
}

function encodeRepoEvent(
  kind: 'identity' | 'account',
  body: Record<string, unknown>,
  timeUs: number,
  texts: string[],
  messages: JetstreamMessage[],
): void {
  const did = body.did;
  if (typeof did !== 'string') throw new Error('event without did');
  // Jetstream sends the upstream event body as it came (keys sorted by the Go encoder).
  const inner: Record<string, unknown> = {};
  for (const k of Object.keys(body).sort()) inner[k] = body[k];
  texts.push(
    `{"did":${JSON.stringify(did)},"time_us":${timeUs},"kind":"${kind}","${kind}":${JSON.stringify(dataToJson(inner))}}`,
  );
  messages.push({ kind, did, jsonBytes: 0 });
}

function encodeCommit(
  body: Record<string, unknown>,
  timeUs: number,
  texts: string[],
  messages: JetstreamMessage[],
  onSkip?: (reason: EncodeSkip) => void,
  prefilter?: MessagePrefilter,
): void {
  const did = body.repo;
  const rev = body.rev;
  const ops = body.ops;
  if (typeof did !== 'string' || typeof rev !== 'string' || !Array.isArray(ops))
    throw new Error('bad commit');
  if (prefilter && !prefilter('commit', did)) return; // cheap: before the CAR is walked
  let blocks: BlockMap | undefined;
  const head = `{"did":${JSON.stringify(did)},"time_us":${timeUs},"kind":"commit","commit":{"rev":${JSON.stringify(rev)},"operation":"`;
  for (const op of ops as unknown[]) {
    if (typeof op !== 'object' || op === null) continue;
    const { action, path, cid } = op as { action?: unknown; path?: unknown; cid?: unknown };
    if (typeof action !== 'string' || typeof path !== 'string') continue;
    const slash = path.indexOf('/');
    if (slash <= 0) continue;
    const collection = path.slice(0, slash);
    const rkey = path.slice(slash + 1);
    if (prefilter && !prefilter('commit', did, collection)) continue;
    let text = `${head}${action}","collection":${JSON.stringify(collection)},"rkey":${JSON.stringify(rkey)}`;
    if (action === 'create' || action === 'update') {
      if (!isCid(cid)) continue;
      blocks ??= body.blocks instanceof Uint8Array ? carBlocks(body.blocks) : new BlockMap();
      const block = blocks.get(cid);
      if (!block) {
        // tooBig commits and partial diffs: Jetstream has no record to show either
        onSkip?.('missing_block');
        continue;
      }
      let record: unknown;
      try {
        record = dataToJson(decodeCbor(block));
      } catch {
        onSkip?.('bad_record');
        continue;
      }
      text += `,"record":${JSON.stringify(record)},"cid":"${cidToString(cid)}"`;
    } else if (action !== 'delete') continue;
    texts.push(`${text}}}`);
    messages.push({ kind: 'commit', did, collection, jsonBytes: 0 });
  }
}

/**
 * The blocks of a CAR by CID, without hash checks (readCar's checks): the
 * relay verified these blocks before logging the event. Bounds: the walk
 * stays inside `car` and stops at the first malformed section.
 */
export function carBlocks(car: Uint8Array): BlockMap {
  const out = new BlockMap();
  const buf = Buffer.from(car.buffer, car.byteOffset, car.byteLength);
  let p = 0;
  const varint = (): number => {
    let v = 0;
    let scale = 1;
    for (let i = 0; i < 8 && p < buf.length; i++) {
      const b = buf[p++];
      v += (b & 0x7f) * scale;
      if (b < 0x80) return v;
      scale *= 128;
    }
    return -1;
  };
  const headerLen = varint();
  if (headerLen < 0 || headerLen > buf.length - p) return out;
  p += headerLen;
  while (p < buf.length) {
    const len = varint();
    if (len < 36 || len > buf.length - p) break;
    // CIDv1, sha2-256: 4 prefix bytes + 32 digest bytes (the relay accepts no other kind)
    out.set(new CidLinkWrapper(buf.subarray(p, p + 36)), buf.subarray(p + 36, p + len));
    p += len;
  }
  return out;
}
