// DID document → the few facts a relay needs about an account: its handle
// claim, its repo signing key and its PDS endpoint (atproto.com/specs/did).
//
// Documents come from PLC or from arbitrary did:web hosts, so nothing is
// trusted: the document must name the DID it was fetched for, and each
// field is taken only if it has the exact shape atproto defines (the
// `#atproto` verification method as Multikey or one of the legacy key types,
// the `#atproto_pds` service of type AtprotoPersonalDataServer with an
// http(s) URL, the first valid `at://` handle in alsoKnownAs). A malformed
// optional field makes that fact absent rather than failing the whole
// document, which is how the reference implementations behave. The result is
// small and flat so the identity cache can hold millions of them.
import { KeyError, type PublicKey, parseLegacyMultibaseKey, parseMultikey } from '../keys.ts';
import { isValidHandle, normalizeHandle } from '../syntax.ts';

/** What the relay keeps about an identity (no raw JSON). */
export interface AtprotoIdentity {
  did: string;
  /** Claimed handle, normalised to lower case; not yet verified bidirectionally. */
  handle?: string;
  signingKey?: PublicKey;
  /** PDS base URL without a trailing slash. */
  pdsEndpoint?: string;
}

export class DidDocumentError extends Error {
  constructor(
    readonly did: string,
    message: string,
  ) {
    super(`invalid DID document for ${did}: ${message}`);
    this.name = 'DidDocumentError';
  }
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** True when `id` names the fragment `frag` of `did`, relatively (`#frag`) or absolutely (`did#frag`). */
function idMatches(id: unknown, did: string, frag: string): boolean {
  return id === `#${frag}` || id === `${did}#${frag}`;
}

export function parseDidDocument(json: unknown, expectedDid: string): AtprotoIdentity {
  if (!isObject(json)) throw new DidDocumentError(expectedDid, 'not a JSON object');
  if (typeof json.id !== 'string') throw new DidDocumentError(expectedDid, 'missing id');
  if (json.id !== expectedDid) throw new DidDocumentError(expectedDid, `id is ${json.id.slice(0, 200)}`);
  const identity: AtprotoIdentity = { did: expectedDid };
  const handle = extractHandle(json.alsoKnownAs);
  if (handle !== undefined) identity.handle = handle;
  const signingKey = extractSigningKey(json.verificationMethod, expectedDid);
  if (signingKey !== undefined) identity.signingKey = signingKey;
  const pds = extractPdsEndpoint(json.service, expectedDid);
  if (pds !== undefined) identity.pdsEndpoint = pds;
  return identity;
}

function extractHandle(aka: unknown): string | undefined {
  if (!Array.isArray(aka)) return undefined;
  for (const entry of aka) {
    if (typeof entry !== 'string' || !entry.startsWith('at://')) continue;
    const candidate = entry.slice('at://'.length);
    if (isValidHandle(candidate)) return normalizeHandle(candidate);
  }
  return undefined;
}

function extractSigningKey(methods: unknown, did: string): PublicKey | undefined {
  if (!Array.isArray(methods)) return undefined;
  for (const m of methods) {
    if (!isObject(m) || !idMatches(m.id, did, 'atproto')) continue;
    if (typeof m.publicKeyMultibase !== 'string') return undefined;
    try {
      if (m.type === 'Multikey') return parseMultikey(m.publicKeyMultibase);
      if (typeof m.type === 'string') return parseLegacyMultibaseKey(m.type, m.publicKeyMultibase);
    } catch (err) {
      if (err instanceof KeyError) return undefined;
      throw err;
    }
    return undefined;
  }
  return undefined;
}

function extractPdsEndpoint(services: unknown, did: string): string | undefined {
  if (!Array.isArray(services)) return undefined;
  for (const s of services) {
    if (!isObject(s) || !idMatches(s.id, did, 'atproto_pds')) continue;
    if (s.type !== 'AtprotoPersonalDataServer') return undefined;
    return validHttpUrl(s.serviceEndpoint);
  }
  return undefined;
}

function validHttpUrl(v: unknown): string | undefined {
  if (typeof v !== 'string' || v.length > 2048) return undefined;
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    return undefined;
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return undefined;
  if (u.hostname === '' || u.username !== '' || u.password !== '') return undefined;
  return v.replace(/\/+$/, '');
}
