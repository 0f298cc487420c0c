// Public keys and ECDSA signatures as atproto uses them: the two curves k256
// (secp256k1, multicodec 0xe7) and p256 (NIST P-256, multicodec 0x1200),
// compressed 33-byte points, did:key / Multikey strings (base58btc 'z' +
// varint multicodec + point) and the legacy DID-document forms (raw point,
// no multicodec prefix), 64-byte compact r||s signatures over sha-256.
//
// Verification is the relay's hottest crypto path (one per commit), so each
// curve has a fast path: the native libsecp256k1 addon for k256, and
// node:crypto (OpenSSL) for p256, where the KeyObject built from the
// compressed point is cached per key because the same accounts sign event
// after event. atproto requires low-S signatures on both curves: the check
// is done here on the raw bytes for both (libsecp256k1 also refuses high-S,
// OpenSSL does not). DER signatures are refused by the 64-byte length rule.
// verifySignature never throws: any malformed input is simply "not valid".
//
// Signing (Keypair) exists for the simulated network, which pre-generates
// thousands of signed commits: k256 uses the addon's deterministic RFC 6979
// signer (low-S by construction), p256 uses node:crypto and normalises S.
import * as nodeCrypto from 'node:crypto';
import { createRequire } from 'node:module';
import { Lru } from '../lru.ts';
import { sha256, sha256Into } from './cid.ts';

export type KeyAlg = 'k256' | 'p256';

export interface PublicKey {
  alg: KeyAlg;
  /** Compressed SEC1 point: 0x02/0x03 prefix then the 32-byte x coordinate. */
  bytes: Uint8Array;
}

export class KeyError extends Error {
  override name = 'KeyError';
}

// ---------------------------------------------------------------------------
// The native secp256k1 addon. `secp256k1` falls back silently to a pure-JS
// implementation (elliptic) when its native binding does not load; we load
// the binding ourselves so we know which one we got, and report it.

type Secp256k1Api = typeof import('secp256k1');
const require = createRequire(import.meta.url);

function loadSecp256k1(): { api: Secp256k1Api; native: boolean } {
  try {
    return { api: require('secp256k1/bindings') as Secp256k1Api, native: true };
  } catch {
    return { api: require('secp256k1/elliptic') as Secp256k1Api, native: false };
  }
}

const { api: secp, native: k256NativeLoaded } = loadSecp256k1();

/** True when k256 runs on the native libsecp256k1 binding (not the JS fallback). */
export const K256_NATIVE: boolean = k256NativeLoaded;

// ---------------------------------------------------------------------------
// Curve constants.

const K256_ORDER = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const P256_ORDER = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const ORDER: Record<KeyAlg, bigint> = { k256: K256_ORDER, p256: P256_ORDER };
const HALF_ORDER_BYTES: Record<KeyAlg, Uint8Array> = {
  k256: bigintTo32Bytes(K256_ORDER >> 1n),
  p256: bigintTo32Bytes(P256_ORDER >> 1n),
};

// Varint-encoded multicodec prefixes: secp256k1-pub 0xe7, p256-pub 0x1200.
const MULTICODEC_PREFIX: Record<KeyAlg, Uint8Array> = {
  k256: Uint8Array.of(0xe7, 0x01),
  p256: Uint8Array.of(0x80, 0x24),
};

const DID_KEY_PREFIX = 'did:key:';
const COMPRESSED_LEN = 33;
const UNCOMPRESSED_LEN = 65;
const SIG_LEN = 64;

// SubjectPublicKeyInfo DER header for an id-ecPublicKey on prime256v1 holding
// a 33-byte compressed point; OpenSSL decompresses (and curve-checks) it.
const P256_SPKI_COMPRESSED_HEADER = Uint8Array.from(
  Buffer.from('3039301306072a8648ce3d020106082a8648ce3d030107032200', 'hex'),
);

// ---------------------------------------------------------------------------
// base58btc (Bitcoin alphabet), the only multibase atproto keys use.

const B58_ALPHABET = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
const B58_INDEX = new Int8Array(128).fill(-1);
for (let i = 0; i < B58_ALPHABET.length; i++) B58_INDEX[B58_ALPHABET.charCodeAt(i)] = i;

export function base58btcEncode(bytes: Uint8Array): string {
  let zeros = 0;
  while (zeros < bytes.length && bytes[zeros] === 0) zeros++;
  // log(256)/log(58) ≈ 1.366 digits per byte.
  const digits = new Uint8Array(Math.ceil((bytes.length - zeros) * 1.366) + 1);
  let len = 0;
  for (let i = zeros; i < bytes.length; i++) {
    let carry = bytes[i];
    for (let j = 0; j < len; j++) {
      carry += digits[j] << 8;
      digits[j] = carry % 58;
      carry = (carry / 58) | 0;
    }
    while (carry > 0) {
      digits[len++] = carry % 58;
      carry = (carry / 58) | 0;
    }
  }
  let out = '1'.repeat(zeros);
  for (let i = len - 1; i >= 0; i--) out += B58_ALPHABET[digits[i]];
  return out;
}

export function base58btcDecode(text: string): Uint8Array {
  let zeros = 0;
  while (zeros < text.length && text[zeros] === '1') zeros++;
  // log(58)/log(256) ≈ 0.733 bytes per digit.
  const bytes = new Uint8Array(Math.ceil((text.length - zeros) * 0.733) + 1);
  let len = 0;
  for (let i = zeros; i < text.length; i++) {
    const code = text.charCodeAt(i);
    const value = code < 128 ? B58_INDEX[code] : -1;
    if (value < 0) throw new KeyError(`invalid base58btc character ${JSON.stringify(text[i])}`);
    let carry = value;
    for (let j = 0; j < len; j++) {
      carry += bytes[j] * 58;
      bytes[j] = carry & 0xff;
      carry >>= 8;
    }
    while (carry > 0) {
      bytes[len++] = carry & 0xff;
      carry >>= 8;
    }
  }
  const out = new Uint8Array(zeros + len);
  for (let i = 0; i < len; i++) out[zeros + i] = bytes[len - 1 - i];
  return out;
}

// ---------------------------------------------------------------------------
// Parsing and formatting.

function decodeMultibaseZ(multibase: string, what: string): Uint8Array {
  if (typeof multibase !== 'string' || multibase.length < 2 || multibase[0] !== 'z') {
    throw new KeyError(`${what} must be base58btc multibase (start with 'z')`);
  }
  return base58btcDecode(multibase.slice(1));
}

function startsWith(bytes: Uint8Array, prefix: Uint8Array): boolean {
  if (bytes.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (bytes[i] !== prefix[i]) return false;
  return true;
}

/** Throws KeyError unless `bytes` is a compressed point on the curve of `alg`. */
function assertCompressedPoint(alg: KeyAlg, bytes: Uint8Array, what: string): void {
  if (bytes.length === UNCOMPRESSED_LEN && bytes[0] === 0x04) {
    throw new KeyError(
      `${what}: uncompressed ${alg} public keys are not allowed (atproto requires compressed)`,
    );
  }
  if (bytes.length !== COMPRESSED_LEN || (bytes[0] !== 0x02 && bytes[0] !== 0x03)) {
    throw new KeyError(
      `${what}: ${alg} public key must be a 33-byte compressed point (got ${bytes.length} bytes)`,
    );
  }
  if (!isPointOnCurve(alg, bytes))
    throw new KeyError(`${what}: ${alg} public key is not a point on the curve`);
}

function isPointOnCurve(alg: KeyAlg, compressed: Uint8Array): boolean {
  if (alg === 'k256') {
    try {
      return secp.publicKeyVerify(compressed);
    } catch {
      return false;
    }
  }
  return p256KeyObject(compressed) !== null;
}

/** Parses a Multikey value (`z` + base58btc(varint multicodec + compressed point)). */
export function parseMultikey(multibase: string): PublicKey {
  const prefixed = decodeMultibaseZ(multibase, 'multikey');
  for (const alg of ['k256', 'p256'] as const) {
    if (startsWith(prefixed, MULTICODEC_PREFIX[alg])) {
      const bytes = prefixed.slice(MULTICODEC_PREFIX[alg].length);
      assertCompressedPoint(alg, bytes, 'multikey');
      return { alg, bytes };
    }
  }
  throw new KeyError('multikey: unsupported key type (only secp256k1 0xe7 and p256 0x1200)');
}

/** Parses `did:key:z…` into its public key. */
export function parseDidKey(didKey: string): PublicKey {
  if (typeof didKey !== 'string' || !didKey.startsWith(DID_KEY_PREFIX)) {
    throw new KeyError(`not a did:key: ${String(didKey).slice(0, 64)}`);
  }
  return parseMultikey(didKey.slice(DID_KEY_PREFIX.length));
}

export function formatMultikey(key: PublicKey): string {
  assertCompressedPoint(key.alg, key.bytes, 'formatMultikey');
  const prefix = MULTICODEC_PREFIX[key.alg];
  const prefixed = new Uint8Array(prefix.length + key.bytes.length);
  prefixed.set(prefix, 0);
  prefixed.set(key.bytes, prefix.length);
  return `z${base58btcEncode(prefixed)}`;
}

export function formatDidKey(key: PublicKey): string {
  return DID_KEY_PREFIX + formatMultikey(key);
}

export const LEGACY_KEY_TYPES: Readonly<Record<string, KeyAlg>> = {
  EcdsaSecp256k1VerificationKey2019: 'k256',
  EcdsaSecp256r1VerificationKey2019: 'p256',
};

/**
 * Legacy DID-document verification methods: `type` names the curve and
 * `publicKeyMultibase` is base58btc of the bare point, without a multicodec
 * prefix. Old documents may carry an uncompressed point here (the reference
 * implementation compresses it), so 65-byte points are accepted and
 * compressed; did:key and Multikey accept compressed points only.
 */
export function parseLegacyMultibaseKey(type: string, multibase: string): PublicKey {
  const alg = Object.hasOwn(LEGACY_KEY_TYPES, type) ? LEGACY_KEY_TYPES[type] : undefined;
  if (alg === undefined) throw new KeyError(`unsupported legacy verification method type: ${type}`);
  let bytes = decodeMultibaseZ(multibase, 'publicKeyMultibase');
  if (bytes.length === UNCOMPRESSED_LEN && bytes[0] === 0x04) bytes = compressPoint(alg, bytes);
  assertCompressedPoint(alg, bytes, 'publicKeyMultibase');
  return { alg, bytes };
}

function compressPoint(alg: KeyAlg, uncompressed: Uint8Array): Uint8Array {
  try {
    if (alg === 'k256') return secp.publicKeyConvert(uncompressed, true);
    return new Uint8Array(
      nodeCrypto.ECDH.convertKey(
        Buffer.from(uncompressed),
        'prime256v1',
        undefined,
        undefined,
        'compressed',
      ) as Buffer,
    );
  } catch {
    throw new KeyError(`${alg} uncompressed public key is not a point on the curve`);
  }
}

// ---------------------------------------------------------------------------
// Verification.

// Keys made ready for verification, in two small per-thread LRUs
// (src/lru.ts) keyed by the compressed point (as a latin1 string: cheap to
// build, exact). An account signs many commits with one key, so a hit is
// the common case:
// - p256: the KeyObject (building one costs more than a verification);
// - k256: the uncompressed point. Given a compressed point, libsecp256k1
//   takes a square root to decompress it on every verify; given the
//   uncompressed one it does not: 64 → 57 µs per verify (bench in
//   docs/benchmarks.md, "Fifth session"). A miss costs the conversion
//   once (~7 µs), so it is never slower than before.
// A point that does not parse is not cached (it fails every time, as before).
const PREPARED_KEYS_MAX = 8192;
const p256Cache = new Lru<string, nodeCrypto.KeyObject>(PREPARED_KEYS_MAX);
const k256Cache = new Lru<string, Uint8Array>(PREPARED_KEYS_MAX);

function isCompressedPoint(bytes: Uint8Array): boolean {
  return bytes.length === COMPRESSED_LEN && (bytes[0] === 0x02 || bytes[0] === 0x03);
}

function pointKey(compressed: Uint8Array): string {
  return Buffer.from(compressed.buffer, compressed.byteOffset, compressed.byteLength).toString('latin1');
}

/** The cached preparation of a compressed point, or null when it is not one (or `prepare` refuses it). */
function preparedKey<V>(
  cache: Lru<string, V>,
  compressed: Uint8Array,
  prepare: (point: Uint8Array) => V,
): V | null {
  const cacheKey = pointKey(compressed);
  const hit = cache.get(cacheKey);
  if (hit !== undefined) return hit;
  if (!isCompressedPoint(compressed)) return null;
  let prepared: V;
  try {
    prepared = prepare(compressed);
  } catch {
    return null;
  }
  cache.set(cacheKey, prepared);
  return prepared;
}

function p256KeyObject(compressed: Uint8Array): nodeCrypto.KeyObject | null {
  return preparedKey(p256Cache, compressed, (point) => {
    const der = new Uint8Array(P256_SPKI_COMPRESSED_HEADER.length + COMPRESSED_LEN);
    der.set(P256_SPKI_COMPRESSED_HEADER, 0);
    der.set(point, P256_SPKI_COMPRESSED_HEADER.length);
    return nodeCrypto.createPublicKey({ key: Buffer.from(der.buffer), format: 'der', type: 'spki' });
  });
}

/** The uncompressed form of a compressed k256 point, or null when it is not a point on the curve. */
function k256UncompressedPoint(compressed: Uint8Array): Uint8Array | null {
  return preparedKey(k256Cache, compressed, (point) => secp.publicKeyConvert(point, false));
}

/** True when the S half of a compact signature is above n/2 (the malleable twin). */
export function isHighS(alg: KeyAlg, sig: Uint8Array): boolean {
  const half = HALF_ORDER_BYTES[alg];
  for (let i = 0; i < 32; i++) {
    const d = sig[32 + i] - half[i];
    if (d !== 0) return d > 0;
  }
  return false; // s == n/2 (floor) is low
}

/**
 * The message hash handed to libsecp256k1, one scratch array for every
 * verification (the call is synchronous and keeps nothing). A fresh array per
 * call would be moved off V8's heap by the native binding: a malloc and a
 * free on another thread for each signature.
 */
const messageHash = new Uint8Array(32);

/**
 * ECDSA verification as atproto defines it: sha-256 of `message`, 64-byte
 * compact r||s signature, low-S only. Returns false (never throws) for any
 * malformed key, signature or message.
 */
export function verifySignature(key: PublicKey, message: Uint8Array, sig: Uint8Array): boolean {
  try {
    if (!(sig instanceof Uint8Array) || sig.length !== SIG_LEN) return false;
    if (!(message instanceof Uint8Array) || !key || !(key.bytes instanceof Uint8Array)) return false;
    if (key.alg !== 'k256' && key.alg !== 'p256') return false;
    if (isHighS(key.alg, sig)) return false;
    if (key.alg === 'k256') {
      const point = k256UncompressedPoint(key.bytes);
      if (point === null) return false;
      sha256Into(message, messageHash);
      return secp.ecdsaVerify(sig, messageHash, point);
    }
    const keyObject = p256KeyObject(key.bytes);
    if (keyObject === null) return false;
    return nodeCrypto.verify('sha256', message, { key: keyObject, dsaEncoding: 'ieee-p1363' }, sig);
  } catch {
    return false;
  }
}

/** Convenience: verify against a did:key string; false if the did:key does not parse. */
export function verifySignatureDidKey(didKey: string, message: Uint8Array, sig: Uint8Array): boolean {
  let key: PublicKey;
  try {
    key = parseDidKey(didKey);
  } catch {
    return false;
  }
  return verifySignature(key, message, sig);
}

// ---------------------------------------------------------------------------
// Signing (simulator, tests).

function bigintTo32Bytes(n: bigint): Uint8Array {
  const out = new Uint8Array(32);
  let v = n;
  for (let i = 31; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

function bytesToBigint(bytes: Uint8Array): bigint {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n;
}

/** Returns a copy of `sig` with s replaced by n − s (turns low-S into high-S and back). */
export function toHighS(alg: KeyAlg, sig: Uint8Array): Uint8Array {
  if (sig.length !== SIG_LEN) throw new KeyError(`signature must be ${SIG_LEN} bytes`);
  const out = Uint8Array.from(sig);
  const s = bytesToBigint(sig.subarray(32));
  out.set(bigintTo32Bytes(ORDER[alg] - s), 32);
  return out;
}

function toBase64Url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

export class Keypair {
  readonly alg: KeyAlg;
  readonly publicKey: PublicKey;
  readonly #privateKey: Uint8Array;
  readonly #p256Signer: nodeCrypto.KeyObject | null;
  #didKey: string | undefined;

  private constructor(alg: KeyAlg, privateKey: Uint8Array) {
    this.alg = alg;
    this.#privateKey = Uint8Array.from(privateKey);
    if (privateKey.length !== 32) throw new KeyError(`${alg} private key must be 32 bytes`);
    if (alg === 'k256') {
      if (!secp.privateKeyVerify(this.#privateKey)) throw new KeyError('k256 private key is out of range');
      this.publicKey = { alg, bytes: secp.publicKeyCreate(this.#privateKey, true) };
      this.#p256Signer = null;
    } else if (alg === 'p256') {
      const ecdh = nodeCrypto.createECDH('prime256v1');
      try {
        ecdh.setPrivateKey(Buffer.from(this.#privateKey));
      } catch {
        throw new KeyError('p256 private key is out of range');
      }
      const uncompressed = ecdh.getPublicKey();
      this.publicKey = { alg, bytes: new Uint8Array(ecdh.getPublicKey(null, 'compressed')) };
      this.#p256Signer = nodeCrypto.createPrivateKey({
        key: {
          kty: 'EC',
          crv: 'P-256',
          d: toBase64Url(this.#privateKey),
          x: toBase64Url(uncompressed.subarray(1, 33)),
          y: toBase64Url(uncompressed.subarray(33, 65)),
        },
        format: 'jwk',
      });
    } else {
      throw new KeyError(`unsupported key algorithm: ${String(alg)}`);
    }
  }

  static generate(alg: KeyAlg): Keypair {
    for (;;) {
      const candidate = new Uint8Array(nodeCrypto.randomBytes(32));
      const n = bytesToBigint(candidate);
      if (n > 0n && n < ORDER[alg]) return new Keypair(alg, candidate);
    }
  }

  static fromPrivateKey(alg: KeyAlg, bytes: Uint8Array): Keypair {
    return new Keypair(alg, bytes);
  }

  /** The 32-byte private scalar (for persisting simulator identities). */
  exportPrivateKey(): Uint8Array {
    return Uint8Array.from(this.#privateKey);
  }

  did(): string {
    this.#didKey ??= formatDidKey(this.publicKey);
    return this.#didKey;
  }

  /** sha-256 then ECDSA; returns a 64-byte compact low-S signature. */
  sign(message: Uint8Array): Uint8Array {
    if (this.alg === 'k256') {
      return secp.ecdsaSign(sha256(message), this.#privateKey).signature;
    }
    const sig = new Uint8Array(
      nodeCrypto.sign('sha256', message, { key: this.#p256Signer!, dsaEncoding: 'ieee-p1363' }),
    );
    return isHighS('p256', sig) ? toHighS('p256', sig) : sig;
  }
}
