// Byte-level mutators for the fuzz suite. Each takes a valid seed (or a
// partly mutated one) and returns a new buffer; `mutate` applies one to four
// of them, chosen by the PRNG, so every input is reproducible from
// (seed, target, index). The mutators aim at what a hostile peer would try
// against a CBOR/CAR decoder: bit flips and byte swaps, truncation, splices
// from other seeds, duplicated and deleted slices, CBOR heads whose declared
// length is blown up to 2^32 or 2^53, varints (CAR section lengths) made
// huge, and deep nesting (thousands of one-element arrays or maps) wrapped
// around or spliced into the value.
import type { Prng } from '../../sim/prng.ts';

/** Byte values that sit on boundaries of CBOR heads (major type × additional info) and of varints. */
const INTERESTING_BYTES = [
  0x00, 0x01, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1f, 0x20, 0x3b, 0x40, 0x5b, 0x5f, 0x60, 0x7b, 0x7f, 0x80, 0x81,
  0x9b, 0x9f, 0xa0, 0xa1, 0xbb, 0xbf, 0xc0, 0xd8, 0x2a, 0xf4, 0xf5, 0xf6, 0xf7, 0xf9, 0xfa, 0xfb, 0xff,
];

/** Heads with an 8-byte or 4-byte argument, for declaring absurd lengths. */
const LONG_HEADS = [0x5a, 0x5b, 0x7a, 0x7b, 0x9a, 0x9b, 0xba, 0xbb, 0x1b, 0x3b];

export type Mutator = (input: Uint8Array, prng: Prng, others: readonly Uint8Array[]) => Uint8Array;

function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const flipBits: Mutator = (input, prng) => {
  if (input.length === 0) return input;
  const out = input.slice();
  const n = 1 + prng.int(4);
  for (let i = 0; i < n; i++) out[prng.int(out.length)] ^= 1 << prng.int(8);
  return out;
};

const setInterestingByte: Mutator = (input, prng) => {
  if (input.length === 0) return input;
  const out = input.slice();
  out[prng.int(out.length)] = prng.pick(INTERESTING_BYTES);
  return out;
};

const randomBytes: Mutator = (input, prng) => {
  if (input.length === 0) return prng.bytes(1 + prng.int(64));
  const out = input.slice();
  const at = prng.int(out.length);
  const n = Math.min(out.length - at, 1 + prng.int(16));
  out.set(prng.bytes(n), at);
  return out;
};

const truncate: Mutator = (input, prng) => input.slice(0, prng.int(input.length + 1));

const dropHead: Mutator = (input, prng) => input.slice(prng.int(Math.min(input.length + 1, 64)));

const deleteSlice: Mutator = (input, prng) => {
  if (input.length < 2) return input;
  const at = prng.int(input.length);
  const n = 1 + prng.int(Math.min(64, input.length - at));
  return concat([input.subarray(0, at), input.subarray(at + n)]);
};

const duplicateSlice: Mutator = (input, prng) => {
  if (input.length === 0) return input;
  const at = prng.int(input.length);
  const n = 1 + prng.int(Math.min(256, input.length - at));
  const slice = input.subarray(at, at + n);
  const copies = prng.int(8) === 0 ? 1 + prng.int(200) : 1;
  return concat([
    input.subarray(0, at + n),
    ...new Array<Uint8Array>(copies).fill(slice),
    input.subarray(at + n),
  ]);
};

const spliceOther: Mutator = (input, prng, others) => {
  const other = others.length > 0 ? prng.pick(others) : input;
  if (other.length === 0) return input;
  const from = prng.int(other.length);
  const n = 1 + prng.int(Math.min(512, other.length - from));
  const at = prng.int(input.length + 1);
  const replace = prng.int(2) === 0 ? 0 : prng.int(Math.min(64, input.length - at) + 1);
  return concat([input.subarray(0, at), other.subarray(from, from + n), input.subarray(at + replace)]);
};

const crossOver: Mutator = (input, prng, others) => {
  const other = others.length > 0 ? prng.pick(others) : input;
  const cut = prng.int(input.length + 1);
  const otherCut = prng.int(other.length + 1);
  return concat([input.subarray(0, cut), other.subarray(otherCut)]);
};

/** Replaces a byte with a head that declares 2^32-ish or 2^53-ish items or bytes. */
const blowUpLength: Mutator = (input, prng) => {
  if (input.length === 0) return input;
  const at = prng.int(input.length);
  const head = prng.pick(LONG_HEADS);
  const wide = (head & 0x1f) === 27;
  const arg = new Uint8Array(wide ? 8 : 4);
  if (wide) {
    // up to the safe-integer edge (0x001fffff…) or past it
    arg[0] = 0;
    arg[1] = prng.pick([0x00, 0x1f, 0x20, 0xff]);
    arg[2] = 0xff;
  }
  for (let i = wide ? 3 : 0; i < arg.length; i++) arg[i] = prng.pick([0x00, 0x7f, 0xff]);
  const replace = prng.int(2) === 0 ? 1 : 1 + arg.length;
  return concat([
    input.subarray(0, at),
    Uint8Array.of(head),
    arg,
    input.subarray(Math.min(input.length, at + replace)),
  ]);
};

/** Replaces a byte run with a long or huge LEB128 varint (CAR header and section lengths). */
const blowUpVarint: Mutator = (input, prng) => {
  const at = prng.int(Math.min(input.length, 8) + 1);
  const n = 1 + prng.int(10);
  const v = new Uint8Array(n);
  for (let i = 0; i < n - 1; i++) v[i] = 0x80 | prng.int(128);
  v[n - 1] = prng.int(2) === 0 ? 0x7f : prng.int(128);
  return concat([input.subarray(0, at), v, input.subarray(Math.min(input.length, at + prng.int(3)))]);
};

/** Wraps the input (or a point inside it) in hundreds to tens of thousands of nested containers. */
const deepNesting: Mutator = (input, prng) => {
  const depth = prng.pick([100, 127, 128, 129, 130, 500, 5_000, 50_000]);
  const unit = prng.pick([Uint8Array.of(0x81), Uint8Array.of(0xa1, 0x61, 0x61), Uint8Array.of(0xa1, 0x60)]);
  const open = new Uint8Array(depth * unit.length);
  for (let i = 0; i < depth; i++) open.set(unit, i * unit.length);
  const at = prng.int(2) === 0 ? 0 : prng.int(input.length + 1);
  const leaf = prng.int(2) === 0 ? Uint8Array.of(0xf6) : new Uint8Array(0);
  return concat([input.subarray(0, at), open, leaf, input.subarray(at)]);
};

export const MUTATORS: readonly Mutator[] = [
  flipBits,
  flipBits,
  setInterestingByte,
  setInterestingByte,
  randomBytes,
  truncate,
  dropHead,
  deleteSlice,
  duplicateSlice,
  spliceOther,
  crossOver,
  blowUpLength,
  blowUpLength,
  blowUpVarint,
  deepNesting,
];

/** Applies one to four mutators; one input in 64 is pure random bytes. */
export function mutate(seed: Uint8Array, prng: Prng, others: readonly Uint8Array[]): Uint8Array {
  if (prng.int(64) === 0) return prng.bytes(prng.int(512));
  let out = seed;
  const rounds = 1 + prng.int(4);
  for (let i = 0; i < rounds; i++) out = prng.pick(MUTATORS)(out, prng, others);
  return out;
}
