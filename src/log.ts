// Structured logging (pino). Modules take a child logger with their own
// `module` field so operators can filter by subsystem, and so a level can be
// set per module: RELAY_LOG_LEVEL=info,ingest=debug,firehose=warn (the bare
// level is the default; `name=level` overrides the children whose `module`
// is `name`, set as each child is made — pino's onChild hook — so a log call
// costs the same as before).
//
// Output: JSON lines (pino's own format, for log collectors) when stdout is
// not a terminal, readable one-line records on a terminal (time, level,
// module, message, then the other fields as key=value), chosen by
// RELAY_LOG_FORMAT (auto | json | pretty). The pretty form is a small
// formatter here, not pino-pretty: it needs no worker thread or extra
// dependency, and it writes synchronously like the JSON form.
import { Writable } from 'node:stream';
import { type DestinationStream, type Logger, type LoggerOptions, pino } from 'pino';

export type { Logger };

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevelName = (typeof LOG_LEVELS)[number];

export interface LogLevelSpec {
  /** Level of every logger no override names. */
  base: LogLevelName;
  /** Per-module levels, by the child logger's `module` field. */
  modules: Map<string, LogLevelName>;
}

function isLevel(v: string): v is LogLevelName {
  return (LOG_LEVELS as readonly string[]).includes(v);
}

/**
 * Parses `level[,module=level...]` (e.g. `info,ingest=debug`); a spec of only
 * overrides keeps `info` as the base. Throws an Error saying what is wrong.
 */
export function parseLogLevels(spec: string): LogLevelSpec {
  const out: LogLevelSpec = { base: 'info', modules: new Map() };
  let baseSeen = false;
  const parts = spec
    .split(',')
    .map((p) => p.trim().toLowerCase())
    .filter((p) => p !== '');
  if (parts.length > 64) throw new Error('at most 64 entries');
  for (const part of parts) {
    const eq = part.indexOf('=');
    if (eq < 0) {
      if (!isLevel(part)) throw new Error(`unknown level "${part}" (${LOG_LEVELS.join(', ')})`);
      if (baseSeen) throw new Error('more than one default level');
      out.base = part;
      baseSeen = true;
      continue;
    }
    const name = part.slice(0, eq).trim();
    const level = part.slice(eq + 1).trim();
    if (!/^[a-z0-9_-]{1,64}$/.test(name)) throw new Error(`bad module name "${name}"`);
    if (!isLevel(level)) throw new Error(`unknown level "${level}" for ${name} (${LOG_LEVELS.join(', ')})`);
    out.modules.set(name, level);
  }
  return out;
}

export type LogFormat = 'auto' | 'json' | 'pretty';

export interface CreateLoggerOptions {
  /** auto (default): pretty when `destination` is a terminal, JSON otherwise. */
  format?: LogFormat;
  /** Where records go (default stdout). */
  destination?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Colours in the pretty form (default: the destination is a terminal and NO_COLOR is unset). */
  colors?: boolean;
}

/** The relay's logger for a level spec (see parseLogLevels). */
export function createLogger(levelSpec: string, opts: CreateLoggerOptions = {}): Logger {
  const levels = parseLogLevels(levelSpec);
  const dest = opts.destination ?? process.stdout;
  const format = opts.format ?? 'auto';
  const pretty = format === 'pretty' || (format === 'auto' && dest.isTTY === true);
  const colors = opts.colors ?? (dest.isTTY === true && !process.env.NO_COLOR);
  // JSON to stdout: pino's own choice of stream (fd 1 directly, or
  // process.stdout when something has wrapped its write, as a test fixture does)
  const stream: DestinationStream | undefined = pretty
    ? prettyStream(dest, colors)
    : (opts.destination as DestinationStream | undefined);
  // pino skips a call below the logger's own level before formatting; a module
  // set lower than the base gets its own level on its child (onChild below).
  const options: LoggerOptions = {
    level: levels.base,
    base: { service: 'atrelay' },
    onChild: (child) => {
      if (levels.modules.size === 0) return;
      const module = (child.bindings() as { module?: unknown }).module;
      if (typeof module !== 'string') return;
      const level = levels.modules.get(module);
      if (level !== undefined && child.level !== level) child.level = level;
    },
  };
  return stream ? pino(options, stream) : pino(options);
}

const LEVEL_NAMES: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO ',
  40: 'WARN ',
  50: 'ERROR',
  60: 'FATAL',
};
const LEVEL_COLORS: Record<number, string> = { 10: '90', 20: '36', 30: '32', 40: '33', 50: '31', 60: '35' };
const OMIT = new Set(['level', 'time', 'msg', 'module', 'service', 'pid', 'hostname']);

/** One pino JSON record as a readable line: `12:00:01.123 INFO  [ingest] message key=value ...`. */
export function formatPrettyLine(json: string, colors: boolean): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const paint = (code: string, s: string) => (colors ? `\x1b[${code}m${s}\x1b[0m` : s);
  const level = typeof rec.level === 'number' ? rec.level : 30;
  const time = typeof rec.time === 'number' ? new Date(rec.time).toISOString().slice(11, 23) : '';
  const parts = [paint('90', time), paint(LEVEL_COLORS[level] ?? '0', LEVEL_NAMES[level] ?? String(level))];
  if (typeof rec.module === 'string') parts.push(paint('34', `[${rec.module}]`));
  if (typeof rec.msg === 'string') parts.push(rec.msg);
  let stack: string | undefined;
  for (const [k, v] of Object.entries(rec)) {
    if (OMIT.has(k)) continue;
    if (k === 'err' && v && typeof v === 'object') {
      const e = v as { message?: unknown; stack?: unknown };
      parts.push(`${paint('90', 'err=')}${JSON.stringify(e.message ?? '')}`);
      if (typeof e.stack === 'string') stack = e.stack;
      continue;
    }
    parts.push(
      `${paint('90', `${k}=`)}${typeof v === 'string' && /^[\w.:/@-]+$/.test(v) ? v : JSON.stringify(v)}`,
    );
  }
  const line = parts.join(' ');
  return stack && level >= 50 ? `${line}\n${paint('90', stack)}` : line;
}

function prettyStream(dest: NodeJS.WritableStream, colors: boolean): DestinationStream {
  let partial = '';
  return new Writable({
    write(chunk: Buffer | string, _enc, done) {
      const text = partial + chunk.toString();
      const lines = text.split('\n');
      partial = lines.pop() ?? '';
      if (partial.length > 1024 * 1024) partial = ''; // a record never gets this long; do not grow
      const out = lines.map((l) => `${formatPrettyLine(l, colors)}\n`).join('');
      if (out) dest.write(out);
      done();
    },
  }) as unknown as DestinationStream;
}

/** A logger that drops everything: the default for library code and tests. */
export const silentLogger: Logger = pino({ level: 'silent' });
