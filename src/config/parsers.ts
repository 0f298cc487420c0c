// Value parsers of the relay settings (settings.ts): each turns the raw text of
// an environment variable or CLI flag into a typed value, or throws a
// ConfigError naming the setting, so a bad value stops the relay at start
// with a message that says which setting and what was expected. Kept apart
// from the table so the table reads as a list of settings and the checks can
// be read (and reused by new settings) in one place.
import { isIP } from 'node:net';
import { parseAddressBlocks } from '../http/client-address.ts';
import { type LogFormat, parseLogLevels } from '../log.ts';

export class ConfigError extends Error {
  constructor(
    readonly setting: string,
    message: string,
  ) {
    super(`invalid setting ${setting}: ${message}`);
    this.name = 'ConfigError';
  }
}

export type Parser<T> = (raw: string, name: string) => T;

export interface Setting<T> {
  env: string;
  flag: string;
  default: T;
  describe: string;
  parse: Parser<T>;
}

export const int =
  (min: number, max: number): Parser<number> =>
  (raw, name) => {
    if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(name, `expected an integer, got "${raw}"`);
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new ConfigError(name, `expected an integer in [${min}, ${max}], got ${raw}`);
    }
    return n;
  };

export const port: Parser<number> = int(0, 65535);

export const num =
  (min: number, max: number): Parser<number> =>
  (raw, name) => {
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
      throw new ConfigError(name, `expected a number in [${min}, ${max}], got "${raw}"`);
    }
    return n;
  };

export const bool: Parser<boolean> = (raw, name) => {
  const v = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off', ''].includes(v)) return false;
  throw new ConfigError(name, `expected true or false, got "${raw}"`);
};

export const str: Parser<string> = (raw) => raw;

export const autoOrInt =
  (min: number, max: number): Parser<number | 'auto'> =>
  (raw, name) =>
    raw.trim().toLowerCase() === 'auto' ? 'auto' : int(min, max)(raw, name);

export const optionalStr: Parser<string | undefined> = (raw) => (raw === '' ? undefined : raw);

export const httpUrl: Parser<string> = (raw, name) => {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new ConfigError(name, `expected an http(s) URL, got "${raw}"`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new ConfigError(name, `expected an http(s) URL, got "${raw}"`);
  }
  return raw.replace(/\/+$/, '');
};

export const databaseUrl: Parser<string | undefined> = (raw, name) => {
  if (raw === '') return undefined;
  if (!/^postgres(ql)?:\/\//.test(raw)) {
    throw new ConfigError(name, 'expected unset (embedded SQLite) or a postgres:// URL');
  }
  return raw;
};

export const upstream: Parser<string | undefined> = (raw, name) => {
  const v = raw.trim();
  if (v === '' || v.toLowerCase() === 'none') return undefined;
  if (!/^[a-zA-Z0-9.-]+(:\d{1,5})?$/.test(v.replace(/^(https?|wss?):\/\//, ''))) {
    throw new ConfigError(name, `expected a hostname or "none", got "${raw}"`);
  }
  return v;
};

export const addressBlocks: Parser<string | undefined> = (raw, name) => {
  try {
    return parseAddressBlocks(raw).length === 0 ? undefined : raw.trim();
  } catch (err) {
    throw new ConfigError(
      name,
      `expected comma-separated IP addresses or CIDR blocks: ${(err as Error).message}`,
    );
  }
};

/**
 * DNS servers: comma-separated `IP`, `IP:port`, `[IPv6]` or `[IPv6]:port`
 * (the forms c-ares's setServers takes); empty: the system's (/etc/resolv.conf).
 */
export const dnsServers: Parser<string[]> = (raw, name) => {
  const out: string[] = [];
  for (const part of raw.split(',')) {
    const v = part.trim();
    if (v === '') continue;
    const m = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(v) ?? /^([\d.]+)(?::(\d{1,5}))?$/.exec(v);
    const ip = m ? m[1] : v; // else a bare IPv6 address
    const p = m?.[2];
    const ok = m ? isIP(ip) === (v.startsWith('[') ? 6 : 4) : isIP(v) === 6;
    if (!ok || (p !== undefined && (Number(p) < 1 || Number(p) > 65535))) {
      throw new ConfigError(
        name,
        `expected comma-separated DNS servers (IP, IP:port, [IPv6]:port), got "${v}"`,
      );
    }
    out.push(v);
  }
  return out;
};

export const logLevel: Parser<string> = (raw, name) => {
  try {
    parseLogLevels(raw);
  } catch (err) {
    throw new ConfigError(
      name,
      `expected a level (trace, debug, info, warn, error, fatal, silent), optionally followed by module=level overrides, e.g. "info,ingest=debug": ${(err as Error).message}`,
    );
  }
  return raw.trim().toLowerCase();
};

export const logFormat: Parser<LogFormat> = (raw, name) => {
  const v = raw.trim().toLowerCase();
  if (v !== 'auto' && v !== 'json' && v !== 'pretty') {
    throw new ConfigError(name, `expected auto, json or pretty; got "${raw}"`);
  }
  return v;
};

export function setting<T>(s: Setting<T>): Setting<T> {
  return s;
}

/** Which event log backend: the embedded file log or the shared JetStream stream (issue 17). */
export type EventLogBackend = 'file' | 'nats';
export const eventLogBackend: Parser<EventLogBackend> = (raw, name) => {
  const v = raw.trim().toLowerCase();
  if (v !== 'file' && v !== 'nats') throw new ConfigError(name, `expected "file" or "nats", got "${raw}"`);
  return v;
};

/** What this process does in a scale-out deployment (docs/scale-out.md). */
export type RelayRole = 'all' | 'ingest' | 'fanout';
export const relayRole: Parser<RelayRole> = (raw, name) => {
  const v = raw.trim().toLowerCase();
  if (v !== 'all' && v !== 'ingest' && v !== 'fanout') {
    throw new ConfigError(name, `expected "all", "ingest" or "fanout", got "${raw}"`);
  }
  return v;
};

export const natsUrls: Parser<string | undefined> = (raw, name) => {
  const v = raw.trim();
  if (v === '') return undefined;
  for (const u of v.split(',')) {
    if (!/^(nats|tls):\/\/[A-Za-z0-9.[\]:-]+(:\d{1,5})?$/.test(u.trim())) {
      throw new ConfigError(name, `expected nats://host:port (comma-separated for several), got "${u}"`);
    }
  }
  return v;
};

export const natsStream: Parser<string> = (raw, name) => {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(raw)) {
    throw new ConfigError(name, `expected 1-64 letters, digits, "-" or "_", got "${raw}"`);
  }
  return raw;
};
