// Strict DAG-CBOR, as atproto requires it: canonical map key order (length,
// then bytes) with no duplicates, minimal-length integer encodings, no
// indefinite lengths, no tags but 42 (CID links), integers within the safe
// range, no trailing bytes. @atcute/cbor enforces all of that while decoding
// (measured fastest in JS), so this module only fixes the project's API:
// CID links decode to `Cid` (see cid.ts) and bytes to Uint8Array. Also
// enforced: CID links must be CIDv1 sha2-256 dag-cbor/raw, strings valid
// UTF-8. Finite float64 values are accepted (DAG-CBOR allows them); the
// atproto no-floats rule is validateDataModel's job (data-model.ts).
//
// Every decode failure is a CborError (reason `malformed`, with the decoder's
// own message, or `too-deep`), so callers and the fuzz suite (test/fuzz) can
// tell a refused input from a bug. Nesting of arrays and maps is capped at
// MAX_CBOR_DEPTH (128, as data-model.ts): @atcute/cbor decodes iteratively,
// but the Uint8Array walk below and every consumer of a decoded value
// recurse, and 100,000 nested one-byte arrays used to end in "Maximum call
// stack size exceeded" (found by the fuzz suite, issue 12).
import {
  decode as atcuteDecode,
  decodeFirst as atcuteDecodeFirst,
  encode as atcuteEncode,
  BytesWrapper,
} from '@atcute/cbor';

/** Deepest nesting of arrays and maps a decoded value may have (a flat map is depth 1). */
export const MAX_CBOR_DEPTH = 128;

export type CborErrorReason = 'malformed' | 'too-deep';

/** What decodeCbor/decodeCborFirst throw for any input they refuse. */
export class CborError extends Error {
  constructor(
    readonly reason: CborErrorReason,
    message: string,
  ) {
    super(message);
    this.name = 'CborError';
  }
}

/** Decodes exactly one DAG-CBOR value; throws CborError on trailing bytes, any non-canonical encoding or nesting past MAX_CBOR_DEPTH. */
export function decodeCbor(bytes: Uint8Array): unknown {
  let value: unknown;
  try {
    value = atcuteDecode(bytes);
  } catch (err) {
    throw new CborError('malformed', (err as Error).message);
  }
  return unwrapBytes(value, 0);
}

/** Decodes the first DAG-CBOR value and returns it with the remaining bytes; throws CborError as decodeCbor. */
export function decodeCborFirst(bytes: Uint8Array): [unknown, Uint8Array] {
  let value: unknown;
  let rest: Uint8Array;
  try {
    [value, rest] = atcuteDecodeFirst(bytes);
  } catch (err) {
    throw new CborError('malformed', (err as Error).message);
  }
  return [unwrapBytes(value, 0), rest];
}

/** Encodes a value as canonical DAG-CBOR (keys sorted, CIDs as tag 42). */
export function encodeCbor(value: unknown): Uint8Array {
  return atcuteEncode(wrapBytes(value));
}

// @atcute/cbor represents byte strings as BytesWrapper; the project uses plain
// Uint8Array everywhere, so convert at the boundary. Maps are recognised by
// their prototype, not `.constructor`, because a map may have a key named
// "constructor"; a "__proto__" key is defined, never assigned, so it stays
// data. Cost (bench/protocol.bench.ts, 3 KB #commit body, CPU time): the
// unwrap walk adds ~0.6-1.2 µs to a ~4-5 µs decode, about 4-6% of a full
// frame + CAR decode. A hand-written strict decoder that builds Uint8Array and
// Cid directly was tried (differentially fuzzed against this one) and was no
// faster than @atcute + walk, so the walk stays.
// `depth` is the number of containers around `v`; entering one past
// MAX_CBOR_DEPTH refuses the value before the recursion can exhaust the stack.
function unwrapBytes(v: unknown, depth: number): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (v instanceof BytesWrapper) return v.buf;
  if (Array.isArray(v)) {
    if (depth >= MAX_CBOR_DEPTH) tooDeep();
    for (let i = 0; i < v.length; i++) v[i] = unwrapBytes(v[i], depth + 1);
    return v;
  }
  if (Object.getPrototypeOf(v) !== Object.prototype) return v; // CidLinkWrapper
  if (depth >= MAX_CBOR_DEPTH) tooDeep();
  const obj = v as Record<string, unknown>;
  for (const k in obj) obj[k] = unwrapBytes(obj[k], depth + 1);
  return obj;
}

function tooDeep(): never {
  throw new CborError('too-deep', `arrays and maps nested deeper than ${MAX_CBOR_DEPTH}`);
}

function wrapBytes(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (v instanceof Uint8Array) return new BytesWrapper(v);
  if (Array.isArray(v)) return v.map(wrapBytes);
  if (Object.getPrototypeOf(v) !== Object.prototype) return v;
  const out: Record<string, unknown> = {};
  const obj = v as Record<string, unknown>;
  let count = 0;
  let reserved = false;
  for (const k in obj) {
    const val = obj[k];
    if (val === undefined) continue;
    count++;
    if (k === '$link' || k === '$bytes') reserved = true;
    if (k === '__proto__') {
      Object.defineProperty(out, k, {
        value: wrapBytes(val),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    } else {
      out[k] = wrapBytes(val);
    }
  }
  // @atcute/cbor would silently encode these JSON-form objects as a CID or a
  // byte string; here links must be `Cid` and bytes Uint8Array (see data-model.ts).
  if (reserved && count === 1) throw new TypeError('refusing to encode a $link/$bytes object as a map');
  return out;
}
