// The atproto data model and its JSON form. In JSON, a CID link is written
// `{"$link": "bafy…"}` and a byte string `{"$bytes": "<base64, unpadded>"}`;
// in memory (and in DAG-CBOR) they are `Cid` and `Uint8Array`. jsonToData /
// dataToJson convert between the two, and validateDataModel checks the rules
// the data model adds on top of DAG-CBOR: integers only (no floats), `$type`
// must be a non-empty string, blobs have the `{$type: 'blob', ref, mimeType,
// size}` shape, `$link`/`$bytes` objects have exactly that one key. The
// validator accepts either form so it can check JSON input before conversion.
import { fromBase64, toBase64 } from './bytes.ts';
import { isCid, parseCid } from './cid.ts';

export class DataModelError extends Error {
  constructor(
    message: string,
    readonly path: string,
  ) {
    super(path ? `${path}: ${message}` : message);
    this.name = 'DataModelError';
  }
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function decodeBase64Strict(s: string, path: string): Uint8Array {
  if (!BASE64.test(s) || s.length % 4 === 1) throw new DataModelError('invalid base64 in $bytes', path);
  return fromBase64(s);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype;
}

function singleKey(obj: Record<string, unknown>): string | undefined {
  let key: string | undefined;
  for (const k in obj) {
    if (key !== undefined) return undefined;
    key = k;
  }
  return key;
}

/** Converts atproto JSON (with `$link` / `$bytes` objects) to data-model values (`Cid`, `Uint8Array`). */
export function jsonToData(json: unknown, path = ''): unknown {
  if (json === null || typeof json !== 'object') return json;
  if (Array.isArray(json)) return json.map((v, i) => jsonToData(v, `${path}[${i}]`));
  if (!isPlainObject(json)) throw new DataModelError('not a JSON value', path);
  if ('$link' in json || '$bytes' in json) {
    const key = singleKey(json);
    if (key === '$link' && typeof json.$link === 'string') {
      try {
        return parseCid(json.$link);
      } catch {
        throw new DataModelError('invalid CID in $link', path);
      }
    }
    if (key === '$bytes' && typeof json.$bytes === 'string') return decodeBase64Strict(json.$bytes, path);
    throw new DataModelError('$link/$bytes object must have exactly one string field', path);
  }
  const out: Record<string, unknown> = {};
  for (const k in json) out[k] = jsonToData(json[k], path ? `${path}.${k}` : k);
  return out;
}

/** Converts data-model values to atproto JSON: `Cid` → `{$link}`, `Uint8Array` → `{$bytes}` (unpadded). */
export function dataToJson(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (isCid(value)) return { $link: value.$link };
  if (value instanceof Uint8Array) return { $bytes: toBase64(value).replace(/=+$/, '') };
  if (Array.isArray(value)) return value.map(dataToJson);
  const out: Record<string, unknown> = {};
  const obj = value as Record<string, unknown>;
  for (const k in obj) out[k] = dataToJson(obj[k]);
  return out;
}

function isLink(v: unknown): boolean {
  if (isCid(v)) return true;
  if (!isPlainObject(v) || singleKey(v) !== '$link' || typeof v.$link !== 'string') return false;
  try {
    parseCid(v.$link);
    return true;
  } catch {
    return false;
  }
}

function validateValue(v: unknown, path: string, depth: number): void {
  if (depth > MAX_DEPTH) throw new DataModelError('nesting too deep', path);
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return;
    case 'number':
      if (!Number.isSafeInteger(v))
        throw new DataModelError('numbers must be safe integers (no floats)', path);
      return;
    case 'object':
      break;
    default:
      throw new DataModelError(`unsupported type ${typeof v}`, path);
  }
  if (v === null || v instanceof Uint8Array || isCid(v)) return;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) validateValue(v[i], `${path}[${i}]`, depth + 1);
    return;
  }
  if (!isPlainObject(v)) throw new DataModelError('unsupported object type', path);
  if ('$link' in v) {
    if (!isLink(v)) throw new DataModelError('invalid $link object', path);
    return;
  }
  if ('$bytes' in v) {
    if (singleKey(v) !== '$bytes' || typeof v.$bytes !== 'string') {
      throw new DataModelError('invalid $bytes object', path);
    }
    decodeBase64Strict(v.$bytes, path);
    return;
  }
  if ('$type' in v) {
    const t = v.$type;
    if (typeof t !== 'string' || t.length === 0)
      throw new DataModelError('$type must be a non-empty string', path);
    if (t === 'blob') validateBlob(v, path);
  }
  for (const k in v) validateValue(v[k], path ? `${path}.${k}` : k, depth + 1);
}

function validateBlob(v: Record<string, unknown>, path: string): void {
  if (!isLink(v.ref)) throw new DataModelError('blob ref must be a CID link', path);
  if (typeof v.mimeType !== 'string' || v.mimeType.length === 0) {
    throw new DataModelError('blob mimeType must be a non-empty string', path);
  }
  if (!Number.isSafeInteger(v.size) || (v.size as number) < 0) {
    throw new DataModelError('blob size must be a non-negative integer', path);
  }
}

/** Nesting limit: the data model sets none, but unbounded depth is a stack hazard. */
export const MAX_DEPTH = 128;

/**
 * Checks a record-like value against the atproto data model rules; throws
 * DataModelError naming the offending path. The top level must be an object.
 */
export function validateDataModel(value: unknown): void {
  if (!isPlainObject(value) || '$link' in value || '$bytes' in value) {
    throw new DataModelError('top level must be an object', '');
  }
  validateValue(value, '', 0);
}

export function isValidDataModel(value: unknown): boolean {
  try {
    validateDataModel(value);
    return true;
  } catch (e) {
    if (e instanceof DataModelError) return false;
    throw e;
  }
}
