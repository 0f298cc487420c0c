// String syntax checks for the atproto identifiers a relay handles: DIDs,
// handles, NSIDs, record keys, AT URIs, TIDs, at-identifiers, plus the
// lexicon string formats datetime, language and uri.
//
// Each format has one checker that returns null when the string is valid or
// a short reason when it is not; `isValidX` and `ensureValidX` are thin
// wrappers over it, so the boolean and throwing forms can never disagree and
// the hot path (isValidDid on every event) builds no error strings. Rules
// follow atproto.com/specs (did, handle, nsid, record-key, at-uri-scheme,
// tid, lexicon string formats) and the interop syntax fixtures.
//
// Two formats have a "well-formed but not valid" tier (the *_parse_invalid
// fixtures); the choice made here, in both cases what atproto's reference
// lexicon validation does:
//  - datetime: isValidDatetime is the full check (shape, calendar ranges,
//    year 0000..9999 after applying the offset); isDatetimeSyntax is the
//    shape alone and accepts e.g. month 00.
//  - language: isValidLanguage is BCP 47 well-formedness (RFC 5646 §2.1);
//    isValidLanguageStrict also refuses repeated variant or extension
//    singleton subtags (RFC 5646 §2.2.9 / §4.1).
// AT URIs follow the spec's restricted syntax used by the lexicon "at-uri"
// format: authority, optional collection NSID and record key, nothing else
// (no query, fragment or trailing slash).

export class InvalidSyntaxError extends Error {
  override name = 'InvalidSyntaxError';
  constructor(
    readonly format: string,
    reason: string,
    input: unknown,
  ) {
    super(`invalid ${format} (${reason}): ${JSON.stringify(String(input).slice(0, 100))}`);
  }
}

type Check = (input: string) => string | null;

function isValid(check: Check, input: unknown): boolean {
  return typeof input === 'string' && check(input) === null;
}

function ensureValid(format: string, check: Check, input: unknown): void {
  const reason = typeof input === 'string' ? check(input) : 'not a string';
  if (reason !== null) throw new InvalidSyntaxError(format, reason, input);
}

// ---------------------------------------------------------------------------
// DID: "did:" + lower-case method + ":" + identifier of [A-Za-z0-9._:%-],
// not ending in ":" or "%"; at most 2048 chars. Percent-escapes are not
// decoded or checked (as in the reference implementation).

/** The longest DID atproto allows (did spec: 2 KB). */
export const DID_MAX = 2048;
const DID_RE = /^did:[a-z]+:[a-zA-Z0-9._:%-]*[a-zA-Z0-9._-]$/;

function checkDid(s: string): string | null {
  if (s.length > DID_MAX) return `longer than ${DID_MAX} chars`;
  if (DID_RE.test(s)) return null;
  if (!s.startsWith('did:')) return 'must start with "did:"';
  if (!/^did:[a-z]+:/.test(s)) return 'method must be lower-case letters followed by ":"';
  if (/[:%]$/.test(s)) return 'can not end with ":" or "%"';
  return 'identifier is empty or has characters outside [A-Za-z0-9._:%-]';
}

export const isValidDid = (s: unknown): s is string => isValid(checkDid, s);
export const ensureValidDid = (s: unknown): void => ensureValid('DID', checkDid, s);

// ---------------------------------------------------------------------------
// Handle: a DNS name of ASCII letters, digits and hyphens; at least two
// labels of 1..63 chars not starting or ending with "-"; the last label
// (TLD) starts with a letter; at most 253 chars. Case-insensitive.

/** The longest handle (a DNS name). */
export const HANDLE_MAX = 253;
const HANDLE_RE =
  /^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;

function checkHandle(s: string): string | null {
  if (s.length > HANDLE_MAX) return `longer than ${HANDLE_MAX} chars`;
  if (HANDLE_RE.test(s)) return null;
  if (!/^[a-zA-Z0-9.-]*$/.test(s)) return 'only ASCII letters, digits, "-" and "." are allowed';
  const labels = s.split('.');
  if (labels.length < 2) return 'needs at least two labels';
  if (labels.some((l) => l.length === 0)) return 'empty label';
  if (labels.some((l) => l.length > 63)) return 'label longer than 63 chars';
  if (labels.some((l) => l.startsWith('-') || l.endsWith('-'))) return 'label starts or ends with "-"';
  return 'last label (TLD) must start with a letter';
}

export const isValidHandle = (s: unknown): s is string => isValid(checkHandle, s);
export const ensureValidHandle = (s: unknown): void => ensureValid('handle', checkHandle, s);

/** Handles compare case-insensitively; the normal form is lower case. */
export function normalizeHandle(handle: string): string {
  return handle.toLowerCase();
}

export function normalizeAndEnsureValidHandle(handle: string): string {
  const normalized = normalizeHandle(handle);
  ensureValidHandle(normalized);
  return normalized;
}

// ---------------------------------------------------------------------------
// NSID: reversed domain authority (first segment starts with a letter,
// segments 1..63 chars of letters, digits, inner hyphens) then a name
// segment (letter, then letters/digits); at least three segments; at most
// 317 chars (253 authority + "." + 63 name).

const NSID_MAX = 253 + 1 + 63;
const NSID_RE =
  /^[a-zA-Z]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)+\.[a-zA-Z][a-zA-Z0-9]{0,62}$/;

function checkNsid(s: string): string | null {
  if (s.length > NSID_MAX) return `longer than ${NSID_MAX} chars`;
  if (NSID_RE.test(s)) return null;
  if (!/^[a-zA-Z0-9.-]*$/.test(s)) return 'only ASCII letters, digits, "-" and "." are allowed';
  const segments = s.split('.');
  if (segments.length < 3) return 'needs at least three segments';
  if (segments.some((x) => x.length === 0)) return 'empty segment';
  if (segments.some((x) => x.length > 63)) return 'segment longer than 63 chars';
  if (/^[0-9]/.test(segments[0])) return 'first segment can not start with a digit';
  if (!/^[a-zA-Z][a-zA-Z0-9]*$/.test(segments[segments.length - 1])) {
    return 'name segment must be a letter followed by letters and digits';
  }
  return 'segment starts or ends with "-"';
}

export const isValidNsid = (s: unknown): s is string => isValid(checkNsid, s);
export const ensureValidNsid = (s: unknown): void => ensureValid('NSID', checkNsid, s);

// ---------------------------------------------------------------------------
// Record key: 1..512 chars of [A-Za-z0-9._:~-], and not "." or "..".

const RKEY_RE = /^[a-zA-Z0-9._:~-]{1,512}$/;

function checkRecordKey(s: string): string | null {
  if (s === '.' || s === '..') return 'can not be "." or ".."';
  if (RKEY_RE.test(s)) return null;
  if (s.length === 0 || s.length > 512) return 'must be 1 to 512 chars';
  return 'only ASCII letters, digits and "._:~-" are allowed';
}

export const isValidRecordKey = (s: unknown): s is string => isValid(checkRecordKey, s);
export const ensureValidRecordKey = (s: unknown): void => ensureValid('record key', checkRecordKey, s);

// ---------------------------------------------------------------------------
// TID: 13 chars of base32-sortable, first char in [2-7a-j] (the top bit of
// the 64-bit value is zero). See tid.ts for the value inside.

const TID_RE = /^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$/;

function checkTid(s: string): string | null {
  if (s.length !== 13) return 'must be 13 chars';
  return TID_RE.test(s) ? null : 'must be base32-sortable (234567a-z) with first char in 2-7a-j';
}

export const isValidTid = (s: unknown): s is string => isValid(checkTid, s);
export const ensureValidTid = (s: unknown): void => ensureValid('TID', checkTid, s);

// ---------------------------------------------------------------------------
// at-identifier: a handle or a DID.

function checkAtIdentifier(s: string): string | null {
  if (s.startsWith('did:')) return checkDid(s);
  return checkHandle(s) === null ? null : 'neither a valid handle nor a DID';
}

export const isValidAtIdentifier = (s: unknown): s is string => isValid(checkAtIdentifier, s);
export const ensureValidAtIdentifier = (s: unknown): void =>
  ensureValid('at-identifier', checkAtIdentifier, s);

// ---------------------------------------------------------------------------
// AT URI (restricted syntax): "at://" AUTHORITY [ "/" NSID [ "/" RKEY ] ],
// at most 8192 chars. Every component is checked with its own rules, whose
// charsets exclude "?", "#", "/", "%"-in-path and whitespace, so queries,
// fragments, empty segments and trailing slashes all fail naturally.

const AT_URI_MAX = 8192;

export interface AtUriParts {
  authority: string;
  collection?: string;
  rkey?: string;
}

function splitAtUri(s: string): AtUriParts | string {
  if (s.length > AT_URI_MAX) return `longer than ${AT_URI_MAX} chars`;
  if (!s.startsWith('at://')) return 'must start with "at://"';
  const parts = s.slice(5).split('/');
  if (parts.length > 3) return 'at most authority, collection and record key';
  const [authority, collection, rkey] = parts;
  if (checkAtIdentifier(authority) !== null) return 'authority is not a valid handle or DID';
  if (collection !== undefined && checkNsid(collection) !== null) return 'collection is not a valid NSID';
  if (rkey !== undefined && checkRecordKey(rkey) !== null) return 'record key is not valid';
  return { authority, collection, rkey };
}

function checkAtUri(s: string): string | null {
  const r = splitAtUri(s);
  return typeof r === 'string' ? r : null;
}

export const isValidAtUri = (s: unknown): s is string => isValid(checkAtUri, s);
export const ensureValidAtUri = (s: unknown): void => ensureValid('AT URI', checkAtUri, s);

/** Splits a valid AT URI into its parts; throws InvalidSyntaxError otherwise. */
export function parseAtUri(s: string): AtUriParts {
  const r = typeof s === 'string' ? splitAtUri(s) : 'not a string';
  if (typeof r === 'string') throw new InvalidSyntaxError('AT URI', r, s);
  return r;
}

// ---------------------------------------------------------------------------
// datetime: the intersection of RFC 3339, ISO 8601 and WHATWG:
// YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM), upper-case T and Z, "-00:00"
// refused, at most 64 chars. The full check also requires real calendar
// values (month 1-12, day within the month, hour ≤ 23, minute and second ≤
// 59, offset ≤ 23:59) and an instant between 0000-01-01T00:00:00Z and the
// end of year 9999. Leap second 60 is refused (no JS Date can hold it).

/** The longest datetime string accepted. */
export const DATETIME_MAX = 64;
const DATETIME_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|([+-])(\d{2}):(\d{2}))$/;

/** Days from 1970-01-01 to the given proleptic-Gregorian date (any year). */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

const DAY_MS = 86_400_000;
const MIN_DATETIME_MS = daysFromCivil(0, 1, 1) * DAY_MS;
const END_DATETIME_MS = daysFromCivil(10000, 1, 1) * DAY_MS;

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

function matchDatetime(s: string): RegExpExecArray | string {
  if (s.length > DATETIME_MAX) return `longer than ${DATETIME_MAX} chars`;
  const m = DATETIME_RE.exec(s);
  if (m === null) return 'not YYYY-MM-DDTHH:MM:SS[.frac] with Z or ±HH:MM';
  if (m[8] === '-00:00') return 'use "Z" or "+00:00" for UTC, not "-00:00"';
  return m;
}

/** Epoch milliseconds (fraction truncated to ms) of a valid datetime, or a reason. */
function datetimeMs(s: string): number | string {
  const m = matchDatetime(s);
  if (typeof m === 'string') return m;
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  const hour = Number(m[4]);
  const minute = Number(m[5]);
  const second = Number(m[6]);
  if (month < 1 || month > 12) return 'month out of range';
  if (day < 1 || day > daysInMonth(year, month)) return 'day out of range for the month';
  if (hour > 23 || minute > 59 || second > 59) return 'time of day out of range';
  let offsetMin = 0;
  if (m[8] !== 'Z') {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23 || om > 59) return 'timezone offset out of range';
    offsetMin = (m[9] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  const fracMs = m[7] === undefined ? 0 : Number(m[7].slice(0, 3).padEnd(3, '0'));
  const ms =
    daysFromCivil(year, month, day) * DAY_MS +
    ((hour * 60 + minute - offsetMin) * 60 + second) * 1000 +
    fracMs;
  if (ms < MIN_DATETIME_MS) return 'normalises to a time before year 0000';
  if (ms >= END_DATETIME_MS) return 'normalises to a time after year 9999';
  return ms;
}

function checkDatetime(s: string): string | null {
  const r = datetimeMs(s);
  return typeof r === 'string' ? r : null;
}

function checkDatetimeSyntax(s: string): string | null {
  const m = matchDatetime(s);
  return typeof m === 'string' ? m : null;
}

export const isValidDatetime = (s: unknown): s is string => isValid(checkDatetime, s);
export const ensureValidDatetime = (s: unknown): void => ensureValid('datetime', checkDatetime, s);
/** Shape only: accepts strings like "1985-00-12T23:20:50Z" that isValidDatetime refuses. */
export const isDatetimeSyntax = (s: unknown): s is string => isValid(checkDatetimeSyntax, s);

/** Epoch milliseconds of a valid datetime (sub-ms digits dropped); throws InvalidSyntaxError. */
export function parseDatetime(s: string): number {
  const r = typeof s === 'string' ? datetimeMs(s) : 'not a string';
  if (typeof r === 'string') throw new InvalidSyntaxError('datetime', r, s);
  return r;
}

// ---------------------------------------------------------------------------
// language: BCP 47 (RFC 5646) language tags. The primary language subtag
// must be 2-3 lower-case letters (as in atproto's validator: "JA" and
// 4-8 letter primaries are refused); other subtags are case-insensitive.

// RFC 5646 §2.2.8 grandfathered tags, matched as listed there.
const GRANDFATHERED = new Set([
  'en-GB-oed',
  'i-ami',
  'i-bnn',
  'i-default',
  'i-enochian',
  'i-hak',
  'i-klingon',
  'i-lux',
  'i-mingo',
  'i-navajo',
  'i-pwn',
  'i-tao',
  'i-tay',
  'i-tsu',
  'sgn-BE-FR',
  'sgn-BE-NL',
  'sgn-CH-DE',
  'art-lojban',
  'cel-gaulish',
  'no-bok',
  'no-nyn',
  'zh-guoyu',
  'zh-hakka',
  'zh-min',
  'zh-min-nan',
  'zh-xiang',
]);

const ALPHA3 = /^[A-Za-z]{3}$/;
const SCRIPT = /^[A-Za-z]{4}$/;
const REGION = /^(?:[A-Za-z]{2}|[0-9]{3})$/;
const VARIANT = /^(?:[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3})$/;
const SINGLETON = /^[0-9A-WYZa-wyz]$/;
const EXTENSION_SUBTAG = /^[A-Za-z0-9]{2,8}$/;
const PRIVATE_SUBTAG = /^[A-Za-z0-9]{1,8}$/;

/** Walks the langtag grammar; returns a reason or null. `strict` adds the no-duplicates rule. */
function checkLanguageTag(s: string, strict: boolean): string | null {
  if (GRANDFATHERED.has(s)) return null;
  const tags = s.split('-');
  const n = tags.length;
  let i = 0;
  const privateUse = (): string | null => {
    // tags[i] is "x" / "X": at least one 1-8 char subtag must follow, then the end.
    if (i + 1 >= n) return 'private-use "x" needs at least one subtag';
    for (let j = i + 1; j < n; j++) if (!PRIVATE_SUBTAG.test(tags[j])) return 'bad private-use subtag';
    return null;
  };
  if (tags[0] === 'x' || tags[0] === 'X') return privateUse();
  if (!/^[a-z]{2,3}$/.test(tags[0])) return 'primary language must be 2-3 lower-case letters';
  i = 1;
  for (let ext = 0; ext < 3 && i < n && ALPHA3.test(tags[i]); ext++) i++;
  if (i < n && SCRIPT.test(tags[i])) i++;
  if (i < n && REGION.test(tags[i])) i++;
  const variants = new Set<string>();
  for (; i < n && VARIANT.test(tags[i]); i++) {
    const v = tags[i].toLowerCase();
    if (strict && variants.has(v)) return `repeated variant subtag "${tags[i]}"`;
    variants.add(v);
  }
  const singletons = new Set<string>();
  while (i < n && SINGLETON.test(tags[i])) {
    const single = tags[i].toLowerCase();
    if (strict && singletons.has(single)) return `repeated extension singleton "${tags[i]}"`;
    singletons.add(single);
    i++;
    const start = i;
    while (i < n && EXTENSION_SUBTAG.test(tags[i])) i++;
    if (i === start) return `extension "${single}" needs at least one 2-8 char subtag`;
  }
  if (i < n && (tags[i] === 'x' || tags[i] === 'X')) return privateUse();
  return i === n ? null : `unexpected subtag "${tags[i]}"`;
}

const checkLanguage: Check = (s) => checkLanguageTag(s, false);
const checkLanguageStrict: Check = (s) => checkLanguageTag(s, true);

/** BCP 47 well-formedness (what the lexicon "language" format requires). */
export const isValidLanguage = (s: unknown): s is string => isValid(checkLanguage, s);
export const ensureValidLanguage = (s: unknown): void => ensureValid('language', checkLanguage, s);
/** Well-formed and no repeated variant or extension singleton (RFC 5646 "valid"). */
export const isValidLanguageStrict = (s: unknown): s is string => isValid(checkLanguageStrict, s);

// ---------------------------------------------------------------------------
// uri (lexicon "uri" format): RFC 3986 scheme, ":", then a non-empty rest
// with no whitespace; after an optional "//" the first char is not "/" or
// missing. At most 8192 chars.

const URI_MAX = 8192;
const URI_RE = /^[A-Za-z][A-Za-z0-9+.-]*:(?:\/\/)?[^\s/][^\s]*$/;

function checkUri(s: string): string | null {
  if (s.length > URI_MAX) return `longer than ${URI_MAX} chars`;
  return URI_RE.test(s) ? null : 'not scheme ":" followed by non-empty text without whitespace';
}

export const isValidUri = (s: unknown): s is string => isValid(checkUri, s);
export const ensureValidUri = (s: unknown): void => ensureValid('uri', checkUri, s);
