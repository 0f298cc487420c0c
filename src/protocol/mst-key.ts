// MST keys (atproto repository spec): their syntax and their height. A key
// is `collection/rkey`, at most 1 KB of a restricted ASCII set with exactly
// one slash, neither side empty. Its height (the layer of the tree it lives
// on) is the number of leading zero bits of sha-256(key) counted in 2-bit
// chunks (fanout 4), so the same key set always gives the same tree shape.
// The tree (mst.ts) and the node codec (mst-node.ts) both check keys with
// what is here. Every key of every node a proof check loads needs a height,
// so this is hot: node:crypto's one-shot hash of the key string with a latin1
// digest (cid.ts) allocates nothing off V8's heap and measured ~20 % faster
// per key than the plain-JS SHA-256 that used to live here (0.44-0.52 against
// 0.57-0.63 µs per 40-byte key, process CPU).
import { sha256Latin1 } from './cid.ts';

export class InvalidMstKeyError extends Error {
  constructor(readonly key: string) {
    super(`invalid MST key: ${JSON.stringify(key.length > 80 ? `${key.slice(0, 80)}…` : key)}`);
    this.name = 'InvalidMstKeyError';
  }
}

export const MAX_MST_KEY_LENGTH = 1024;
const KEY_SYNTAX = /^[a-zA-Z0-9_~\-:.]+\/[a-zA-Z0-9_~\-:.]+$/;

/** Repository keys are `collection/rkey`: one slash, both sides non-empty, a restricted ASCII set. */
export function isValidMstKey(key: string): boolean {
  return key.length <= MAX_MST_KEY_LENGTH && KEY_SYNTAX.test(key);
}

/** Throws InvalidMstKeyError unless `key` is a valid MST key. */
export function checkMstKey(key: string): void {
  if (!isValidMstKey(key)) throw new InvalidMstKeyError(key);
}

/** Key bytes allowed besides the one '/' ([a-zA-Z0-9_~\-:.]): 1 where allowed, indexed by byte (< 0x80). */
export const MST_KEY_BYTE: Uint8Array = (() => {
  const t = new Uint8Array(128);
  const allowed = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_~-:.';
  for (let i = 0; i < allowed.length; i++) t[allowed.charCodeAt(i)] = 1;
  return t;
})();

// A module-local copy: under tsx an imported binding is read through a getter
// on every access, and this runs for every key of every node a proof loads.
const hashLatin1 = sha256Latin1;

/** Leading zero bits (0..256) of a latin1 digest (one char per byte). */
function leadingZeroBits(digest: string): number {
  let zeros = 0;
  for (let i = 0; i < 32; i++) {
    const c = digest.charCodeAt(i);
    if (c !== 0) return zeros + Math.clz32(c) - 24;
    zeros += 8;
  }
  return zeros;
}

/** The key's layer: leading zero bits of sha-256(key) (a string as UTF-8), in 2-bit chunks. */
export function keyHeight(key: string | Uint8Array): number {
  return leadingZeroBits(hashLatin1(key)) >> 1;
}

/** Length of the shared byte prefix (the `p` of a node entry). */
export function commonPrefixLength(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** commonPrefixLength of two valid (so ASCII) keys' bytes. */
export function commonKeyPrefixLength(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}
