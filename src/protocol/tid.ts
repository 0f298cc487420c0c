// TIDs ("timestamp identifiers"): the 13-character revision strings of repo
// commits and the usual record keys. The value is a 64-bit integer — top
// bit 0, 53 bits of microseconds since the UNIX epoch, 10 bits of clock id —
// written as 13 base32-sortable characters (alphabet 234567a-z, 5 bits each,
// most significant first, so the 65 encoded bits carry one leading zero).
//
// The alphabet is in ASCII order and the length is fixed, so for valid TIDs
// plain string comparison is the same as comparing the integers: compareTid
// is just that, and the relay can compare revs without decoding them.
//
// All arithmetic stays in float64 numbers: 53-bit timestamps are exact, and
// the encoder splits the value so no intermediate exceeds 2^53.
import { InvalidSyntaxError, isValidTid } from './syntax.ts';

const ALPHABET = '234567abcdefghijklmnopqrstuvwxyz';
const VALUE_OF = new Int8Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) VALUE_OF[ALPHABET.charCodeAt(i)] = i;

const TWO_POW_50 = 2 ** 50;
/** Largest timestamp a TID can hold (2^53 − 1 µs, about the year 2255). */
export const MAX_TID_TIMESTAMP_US = 2 ** 53 - 1;
export const MAX_TID_CLOCK_ID = 1023;

export interface ParsedTid {
  timestampUs: number;
  clockId: number;
}

/**
 * Decodes a TID. Throws InvalidSyntaxError unless `tid` is valid syntax.
 * The syntax lets the first char reach 'j' (bit 63 set), which the spec says
 * is always zero; that bit is ignored here, so timestampUs is always the
 * 53-bit field.
 */
export function parseTid(tid: string): ParsedTid {
  if (!isValidTid(tid)) throw new InvalidSyntaxError('TID', 'not valid TID syntax', tid);
  // chars 0..10 hold bits 64..10: char 0 carries bits 64..60 (keep 62..60),
  // chars 1..10 carry bits 59..10, chars 11..12 the clock id.
  let low50 = 0;
  for (let i = 1; i <= 10; i++) low50 = low50 * 32 + VALUE_OF[tid.charCodeAt(i)];
  const timestampUs = (VALUE_OF[tid.charCodeAt(0)] & 0b111) * TWO_POW_50 + low50;
  const clockId = VALUE_OF[tid.charCodeAt(11)] * 32 + VALUE_OF[tid.charCodeAt(12)];
  return { timestampUs, clockId };
}

/** Milliseconds since the epoch of a TID's timestamp (floor). */
export function tidTimestampMs(tid: string): number {
  return Math.floor(parseTid(tid).timestampUs / 1000);
}

/**
 * Orders TIDs: negative, zero or positive. For valid TIDs this is plain
 * string order, which equals numeric order (fixed length, alphabet in ASCII
 * order); no decoding needed.
 */
export function compareTid(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Encodes a TID from a microsecond timestamp and a clock id (0..1023). */
export function tidFromTimestampUs(timestampUs: number, clockId: number): string {
  if (!Number.isInteger(timestampUs) || timestampUs < 0 || timestampUs > MAX_TID_TIMESTAMP_US) {
    throw new RangeError(`TID timestamp must be an integer in 0..2^53-1 µs, got ${timestampUs}`);
  }
  if (!Number.isInteger(clockId) || clockId < 0 || clockId > MAX_TID_CLOCK_ID) {
    throw new RangeError(`TID clock id must be an integer in 0..1023, got ${clockId}`);
  }
  const chars = new Array<string>(13);
  chars[12] = ALPHABET[clockId & 31];
  chars[11] = ALPHABET[clockId >> 5];
  let low50 = timestampUs % TWO_POW_50;
  for (let i = 10; i >= 1; i--) {
    const digit = low50 % 32;
    chars[i] = ALPHABET[digit];
    low50 = (low50 - digit) / 32;
  }
  chars[0] = ALPHABET[Math.floor(timestampUs / TWO_POW_50)];
  return chars.join('');
}

/** TID for a wall-clock time in milliseconds (fractional ms keep their µs). */
export function tidFromTime(ms: number, clockId: number): string {
  return tidFromTimestampUs(Math.floor(ms * 1000), clockId);
}

export interface TidClockOptions {
  /** 0..1023; random when omitted. */
  clockId?: number;
  /** Wall clock in milliseconds (injectable for tests); Date.now by default. */
  now?: () => number;
}

/**
 * Issues strictly increasing TIDs from one clock id. Each TID's timestamp is
 * max(wall clock µs, previous + 1), so bursts inside one microsecond (or
 * millisecond: Date.now has ms resolution) and a wall clock stepping
 * backwards still give increasing values; the clock then runs slightly
 * ahead until real time catches up.
 */
export class TidClock {
  readonly clockId: number;
  readonly #now: () => number;
  #lastUs = -1;

  constructor(options: TidClockOptions = {}) {
    this.clockId = options.clockId ?? Math.floor(Math.random() * (MAX_TID_CLOCK_ID + 1));
    if (!Number.isInteger(this.clockId) || this.clockId < 0 || this.clockId > MAX_TID_CLOCK_ID) {
      throw new RangeError(`TID clock id must be an integer in 0..1023, got ${this.clockId}`);
    }
    this.#now = options.now ?? Date.now;
  }

  next(): string {
    const nowUs = Math.floor(this.#now() * 1000);
    this.#lastUs = nowUs > this.#lastUs ? nowUs : this.#lastUs + 1;
    return tidFromTimestampUs(this.#lastUs, this.clockId);
  }

  /** Ensures every later TID sorts after `tid` (e.g. the last rev of a resumed repo). */
  observe(tid: string): void {
    const { timestampUs } = parseTid(tid);
    if (timestampUs > this.#lastUs) this.#lastUs = timestampUs;
  }
}
