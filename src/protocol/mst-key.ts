// MST keys (atproto repository spec): their syntax and their height. A key
// is `collection/rkey`, at most 1 KB of a restricted ASCII set with exactly
// one slash, neither side empty. Its height (the layer of the tree it lives
// on) is the number of leading zero bits of sha-256(key) counted in 2-bit
// chunks (fanout 4), so the same key set always gives the same tree shape.
// The tree (mst.ts) and the node codec (mst-node.ts) both check keys with
// what is here; heights are hashed by the small plain-JS SHA-256 of
// sha256-small.ts because every key of every node a proof check loads needs
// one.
import { utf8Encode } from './bytes.ts';
import { asciiSha256LeadingZeroBits, sha256LeadingZeroBits } from './sha256-small.ts';

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

/** The key's layer: leading zero bits of sha-256(key), in 2-bit chunks. */
export function keyHeight(key: string | Uint8Array): number {
  return sha256LeadingZeroBits(typeof key === 'string' ? utf8Encode(key) : key) >> 1;
}

// A module-local copy: under tsx an imported binding is read through a getter
// on every access, and this runs for every key of every node a proof loads.
const asciiLeadingZeroBits = asciiSha256LeadingZeroBits;

/** keyHeight of a key already checked by isValidMstKey (ASCII, so its characters are its bytes). */
export function validKeyHeight(key: string): number {
  return asciiLeadingZeroBits(key) >> 1;
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
