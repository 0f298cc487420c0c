// CIDs as the atproto data model uses them: CIDv1, sha2-256, codec dag-cbor
// (0x71, for records, commits and MST nodes) or raw (0x55, for blobs).
//
// A CID value is an @atcute/cid `CidLinkWrapper`: it holds the binary CID in
// `.bytes` (what the wire carries) and renders the base32 string (`$link`)
// only when asked, so the hot path never formats strings. The CBOR codec
// decodes tag 42 straight into this type and encodes it back.
import * as nodeCrypto from 'node:crypto';
import {
  CidLinkWrapper,
  CODEC_DCBOR,
  CODEC_RAW,
  decode as decodeCidBinary,
  fromString as parseCidString,
} from '@atcute/cid';
import { toBase32 } from '@atcute/multibase';
import { bytesEqual } from './bytes.ts';

export type Cid = CidLinkWrapper;
export { CidLinkWrapper, CODEC_DCBOR, CODEC_RAW };

const SHA256 = 0x12;

// crypto.hash (Node >= 20.12) is a one-shot call without a Hash object and
// is about twice as fast as createHash for the small blocks of a commit.
//
// The digest comes back as a 32-character latin1 string (one char per byte),
// not a Buffer. A Buffer result costs five mallocs (its data, the backing
// store, V8's array-buffer extension, node's copy) that V8's sweeper frees
// later on one of its own threads, so under load every hash also pays for a
// cross-thread free and the malloc arena work it leaves behind: 2.6 µs of
// the process's CPU per 40-byte hash against 0.45 µs as a string, and the
// verify workers hash ~12 blocks per commit (docs/benchmarks.md, thirteenth
// session). A string lives on V8's heap and dies young at no cost.
type OneShotHash = (algorithm: string, data: Uint8Array | string, outputEncoding: 'latin1') => string;
const oneShotHash = (nodeCrypto as unknown as { hash?: OneShotHash }).hash;

/**
 * sha2-256 of `data` (a string is hashed as its UTF-8 bytes) as a
 * 32-character latin1 string, digest byte i at char i (see above).
 */
export const sha256Latin1: (data: Uint8Array | string) => string = oneShotHash
  ? (data) => oneShotHash('sha256', data, 'latin1')
  : (data) => nodeCrypto.createHash('sha256').update(data).digest().toString('latin1');

/** Writes sha2-256 of `data` into `out` at `at` (32 bytes). */
export function sha256Into(data: Uint8Array, out: Uint8Array, at = 0): void {
  const digest = sha256Latin1(data);
  for (let i = 0; i < 32; i++) out[at + i] = digest.charCodeAt(i);
}

/** sha2-256 of `data`. */
export function sha256(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(32);
  sha256Into(data, out);
  return out;
}

/** Whether the 32 bytes of `bytes` at `at` are `digest` (a sha256Latin1 result). */
export function digestEquals(digest: string, bytes: Uint8Array, at: number): boolean {
  for (let i = 0; i < 32; i++) if (bytes[at + i] !== digest.charCodeAt(i)) return false;
  return true;
}

function cidOf(codec: number, block: Uint8Array): Cid {
  // 36 bytes: a typed array this small lives on V8's heap, with no malloc
  const bytes = new Uint8Array(36);
  bytes[0] = 0x01; // CIDv1
  bytes[1] = codec;
  bytes[2] = SHA256;
  bytes[3] = 32;
  sha256Into(block, bytes, 4);
  return new CidLinkWrapper(bytes);
}

/** The CID of a DAG-CBOR block. */
export function cidForCbor(block: Uint8Array): Cid {
  return cidOf(CODEC_DCBOR, block);
}

/** The CID of a raw block (blobs). */
export function cidForRaw(block: Uint8Array): Cid {
  return cidOf(CODEC_RAW, block);
}

/**
 * Checks that `cid` names `block`: the CID must be v1 sha2-256 with a dag-cbor
 * or raw codec, and the digest must match the block's hash.
 */
export function cidMatchesBlock(cid: Cid, block: Uint8Array): boolean {
  const b = cid.bytes;
  if (b.length !== 36 || b[0] !== 0x01 || (b[1] !== CODEC_DCBOR && b[1] !== CODEC_RAW)) return false;
  if (b[2] !== SHA256 || b[3] !== 32) return false;
  return digestEquals(sha256Latin1(block), b, 4);
}

/** Parses a base32 CID string (`bafy…`); throws on anything else. */
export function parseCid(s: string): Cid {
  const cid = parseCidString(s);
  return new CidLinkWrapper(cid.bytes);
}

/** Parses a binary CID (as in CAR sections and CBOR tag 42 payloads without the 0x00 prefix). */
export function cidFromBytes(bytes: Uint8Array): Cid {
  return new CidLinkWrapper(decodeCidBinary(bytes).bytes);
}

/**
 * The base32 string of a CID. Built directly rather than through `$link`,
 * whose getter caches the string with `Object.defineProperty` on the
 * instance: ~790 ns for a CID seen once (as on the verify path) against
 * ~270 ns here.
 */
export function cidToString(cid: Cid): string {
  return `b${toBase32(cid.bytes)}`;
}

export function cidEquals(a: Cid | null | undefined, b: Cid | null | undefined): boolean {
  if (!a || !b) return a === b;
  return bytesEqual(a.bytes, b.bytes);
}

export function isCid(v: unknown): v is Cid {
  return v instanceof CidLinkWrapper;
}

const CID_SYNTAX = /^[a-zA-Z0-9+=]{8,256}$/;

/**
 * Lexicon `cid` string-format check: a loose syntax test (8-256 chars of
 * `[a-zA-Z0-9+=]`, no CIDv0 `Qmb…`), as the atproto spec and indigo define it.
 * It does not decode the CID; use parseCid for that.
 */
export function isValidCidSyntax(s: string): boolean {
  return CID_SYNTAX.test(s) && !s.startsWith('Qmb');
}
