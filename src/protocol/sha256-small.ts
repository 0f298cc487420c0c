// A plain-JS SHA-256 (FIPS 180-4) for short inputs, returning the digest as
// eight words in a shared scratch array. It exists for one hot use: MST key
// heights (mst-key.ts), computed for every key of every node a sync 1.1 proof
// check loads, i.e. dozens of hashes of ~30-byte inputs per commit. For
// inputs that small the fixed cost of a node:crypto call (argument checks, a
// Buffer for the digest) is larger than the hashing itself: on 30-byte keys
// node:crypto's one-shot hash measured ~20-30% slower per key than this
// (re-measured when this file was split out of mst.ts). Everything else hashes with
// node:crypto (cid.ts `sha256`), and so does this module past
// SMALL_SHA256_MAX_BYTES, so the scratch buffer stays small. The tests check
// it against node:crypto at every padding boundary.
import { sha256 } from './cid.ts';

/** Longest input hashed here; longer ones go to node:crypto. */
export const SMALL_SHA256_MAX_BYTES = 4096;

const SHA256_K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
  0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
  0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
  0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
  0xc67178f2,
]);
const shaW = new Int32Array(64);
const shaState = new Int32Array(8);
let shaPad = new Uint8Array(128);

/** The scratch buffer, large enough for a `len`-byte message and its padding; the caller writes the message. */
function shaMessage(len: number): Uint8Array {
  const padded = ((len + 72) >>> 6) << 6;
  if (shaPad.length < padded) shaPad = new Uint8Array(padded);
  return shaPad;
}

/** sha-256 of the `len`-byte message in the scratch buffer, into `shaState` (eight big-endian words). */
function sha256Words(len: number): Int32Array {
  const padded = ((len + 72) >>> 6) << 6; // message + 0x80 + 64-bit length, in whole blocks
  const m = shaPad;
  m[len] = 0x80;
  m.fill(0, len + 1, padded - 4);
  const bits = len * 8; // keys are far below 2^29 bytes, so the high length word is 0
  m[padded - 4] = bits >>> 24;
  m[padded - 3] = bits >>> 16;
  m[padded - 2] = bits >>> 8;
  m[padded - 1] = bits;
  const w = shaW;
  const k = SHA256_K;
  let h0 = 0x6a09e667;
  let h1 = 0xbb67ae85 | 0;
  let h2 = 0x3c6ef372;
  let h3 = 0xa54ff53a | 0;
  let h4 = 0x510e527f;
  let h5 = 0x9b05688c | 0;
  let h6 = 0x1f83d9ab;
  let h7 = 0x5be0cd19;
  for (let q = 0; q < padded; q += 64) {
    let a = h0;
    let b = h1;
    let c = h2;
    let d = h3;
    let e = h4;
    let f = h5;
    let g = h6;
    let h = h7;
    // One loop for the message schedule and the rounds (measured ~15% faster than two).
    for (let i = 0; i < 64; i++) {
      let wi: number;
      if (i < 16) {
        const j = q + (i << 2);
        wi = (m[j] << 24) | (m[j + 1] << 16) | (m[j + 2] << 8) | m[j + 3];
      } else {
        const x = w[i - 15];
        const y = w[i - 2];
        const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
        const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
        wi = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
      }
      w[i] = wi;
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const t1 = (h + S1 + (g ^ (e & (f ^ g))) + k[i] + wi) | 0; // ch(e, f, g)
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const t2 = (S0 + ((a & b) | (c & (a | b)))) | 0; // maj(a, b, c)
      h = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    h0 = (h0 + a) | 0;
    h1 = (h1 + b) | 0;
    h2 = (h2 + c) | 0;
    h3 = (h3 + d) | 0;
    h4 = (h4 + e) | 0;
    h5 = (h5 + f) | 0;
    h6 = (h6 + g) | 0;
    h7 = (h7 + h) | 0;
  }
  const out = shaState;
  out[0] = h0;
  out[1] = h1;
  out[2] = h2;
  out[3] = h3;
  out[4] = h4;
  out[5] = h5;
  out[6] = h6;
  out[7] = h7;
  return out;
}

/** Leading zero bits (0..256) of the eight digest words. */
function leadingZeros(words: Int32Array): number {
  let zeros = 0;
  for (let i = 0; i < 8; i++) {
    const z = Math.clz32(words[i]);
    zeros += z;
    if (z < 32) break;
  }
  return zeros;
}

/** Leading zero bits of sha-256(data) (0..256). */
export function sha256LeadingZeroBits(data: Uint8Array): number {
  if (data.length > SMALL_SHA256_MAX_BYTES) {
    const digest = sha256(data);
    let zeros = 0;
    for (let i = 0; i < digest.length; i++) {
      const z = Math.clz32(digest[i]) - 24;
      zeros += z;
      if (z < 8) break;
    }
    return zeros;
  }
  shaMessage(data.length).set(data, 0);
  return leadingZeros(sha256Words(data.length));
}

/**
 * Leading zero bits of sha-256 of an ASCII string's bytes (its character
 * codes); the caller guarantees ASCII and at most SMALL_SHA256_MAX_BYTES
 * characters (a valid MST key is both).
 */
export function asciiSha256LeadingZeroBits(text: string): number {
  const len = text.length;
  const m = shaMessage(len);
  for (let i = 0; i < len; i++) m[i] = text.charCodeAt(i);
  return leadingZeros(sha256Words(len));
}

/** The full digest, for inputs of at most SMALL_SHA256_MAX_BYTES (the tests compare it with node:crypto). */
export function smallSha256(data: Uint8Array): Uint8Array {
  if (data.length > SMALL_SHA256_MAX_BYTES)
    throw new RangeError(`input longer than ${SMALL_SHA256_MAX_BYTES} bytes`);
  shaMessage(data.length).set(data, 0);
  const words = sha256Words(data.length);
  const out = new Uint8Array(32);
  for (let i = 0; i < 8; i++) {
    out[i * 4] = words[i] >>> 24;
    out[i * 4 + 1] = words[i] >>> 16;
    out[i * 4 + 2] = words[i] >>> 8;
    out[i * 4 + 3] = words[i];
  }
  return out;
}
