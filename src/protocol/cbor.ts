// Strict DAG-CBOR, as atproto requires it: canonical map key order (length,
// then bytes) with no duplicates, minimal-length integer encodings, no
// indefinite lengths, no tags but 42 (CID links), integers within the safe
// range, no trailing bytes. @atcute/cbor enforces all of that while decoding
// (measured fastest in JS), so this module only fixes the project's API:
// CID links decode to `Cid` (see cid.ts) and bytes to Uint8Array. Also
// enforced: CID links must be CIDv1 sha2-256 dag-cbor/raw, strings valid
// UTF-8. Finite float64 values are accepted (DAG-CBOR allows them); the
// atproto no-floats rule is validateDataModel's job (data-model.ts).
import {
  decode as atcuteDecode,
  decodeFirst as atcuteDecodeFirst,
  encode as atcuteEncode,
  BytesWrapper,
} from '@atcute/cbor';

/** Decodes exactly one DAG-CBOR value; throws on trailing bytes or any non-canonical encoding. */
export function decodeCbor(bytes: Uint8Array): unknown {
  return unwrapBytes(atcuteDecode(bytes));
}

/** Decodes the first DAG-CBOR value and returns it with the remaining bytes. */
export function decodeCborFirst(bytes: Uint8Array): [unknown, Uint8Array] {
  const [value, rest] = atcuteDecodeFirst(bytes);
  return [unwrapBytes(value), rest];
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
function unwrapBytes(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (v instanceof BytesWrapper) return v.buf;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = unwrapBytes(v[i]);
    return v;
  }
  if (Object.getPrototypeOf(v) !== Object.prototype) return v; // CidLinkWrapper
  const obj = v as Record<string, unknown>;
  for (const k in obj) obj[k] = unwrapBytes(obj[k]);
  return obj;
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
