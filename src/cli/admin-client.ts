// `atrelay admin …`: a thin command-line client of the relay's admin API
// (docs/api.md, src/api/admin.ts), in the spirit of `goat relay`: list, add,
// block and unblock hosts, reset a host's cursor, take repos down and back.
// Each command is one HTTP request; the answer is printed as a short table or
// line, or as the raw JSON with --json. The admin URL and password come from
// --admin / --token or RELAY_ADMIN_URL / RELAY_ADMIN_PASSWORD. Requests go
// through the safe fetcher with its size and time limits (the relay is the
// operator's own, usually on loopback, so private addresses are allowed).
import { parseArgs } from 'node:util';
import { HttpStatusError, type SafeFetcher } from '../protocol/identity/safe-fetch.ts';

export interface AdminCliIo {
  fetcher: SafeFetcher;
  /** Normal output (stdout). */
  out: (s: string) => void;
  /** Errors and usage (stderr). */
  err: (s: string) => void;
  env: Record<string, string | undefined>;
}

export const ADMIN_USAGE = `usage: atrelay admin <command> [args] [--admin URL] [--token PASSWORD] [--json]

hosts:
  host list [--status S] [--limit N] [--cursor C]   hosts with status, cursor, accounts
  host get HOSTNAME                                 one host in full
  host add HOSTNAME                                 add a host (admin requestCrawl)
  host block HOSTNAME | host unblock HOSTNAME       block (drops the connection) / unblock
  host reconnect HOSTNAME                           drop and re-dial
  host reset-cursor HOSTNAME [SEQ]                  set the saved upstream cursor (none: live)
repos:
  repo get DID                                      the account's state
  takedown DID [--reason TEXT]                      take a repo down
  reverse-takedown DID                              undo a takedown

--admin URL    the relay (default $RELAY_ADMIN_URL or http://127.0.0.1:2470)
--token T      the admin password (default $RELAY_ADMIN_PASSWORD)
--json         print the API's JSON answer as it is`;

interface Request {
  method: 'GET' | 'POST';
  path: string;
  query?: Record<string, string | undefined>;
  body?: Record<string, unknown>;
  print: (json: unknown, out: (s: string) => void) => void;
}

class UsageError extends Error {}

function need(positionals: string[], i: number, what: string): string {
  const v = positionals[i];
  if (v === undefined || v === '') throw new UsageError(`missing ${what}`);
  return v;
}

function printHostTable(json: unknown, out: (s: string) => void): void {
  const { hosts = [], cursor } = json as { hosts?: Record<string, unknown>[]; cursor?: string };
  const rows = hosts.map((h) => [
    String(h.hostname),
    String(h.status),
    h.cursor === null || h.cursor === undefined ? '-' : String(h.cursor),
    String(h.accountCount ?? '-'),
    h.connected ? 'yes' : 'no',
  ]);
  const head = ['HOSTNAME', 'STATUS', 'CURSOR', 'ACCOUNTS', 'CONNECTED'];
  const widths = head.map((t, c) => Math.max(t.length, ...rows.map((r) => r[c].length)));
  for (const r of [head, ...rows])
    out(
      `${r
        .map((v, c) => v.padEnd(widths[c]))
        .join('  ')
        .trimEnd()}\n`,
    );
  if (cursor) out(`(more: --cursor ${cursor})\n`);
}

function printJson(json: unknown, out: (s: string) => void): void {
  out(`${JSON.stringify(json, null, 2)}\n`);
}

function printHostResult(verb: string): Request['print'] {
  return (json, out) => {
    // host actions answer {success, host: {...}}; reset-cursor answers {success, hostname, cursor, status}
    const top = json as { host?: Record<string, unknown> } & Record<string, unknown>;
    const r = top.host ?? top;
    const cursor =
      'cursor' in r
        ? ` cursor=${r.cursor === null || r.cursor === undefined ? 'none' : String(r.cursor)}`
        : '';
    out(`${verb} ${String(r.hostname)}: status=${String(r.status)}${cursor}\n`);
  };
}

function toRequest(positionals: string[], values: Record<string, string | boolean | undefined>): Request {
  const [group, verb] = positionals;
  if (group === 'host' || group === 'hosts') {
    const hostname = () => need(positionals, 2, 'HOSTNAME');
    switch (verb ?? 'list') {
      case 'list':
        return {
          method: 'GET',
          path: '/admin/hosts',
          query: {
            status: values.status as string | undefined,
            limit: values.limit as string | undefined,
            cursor: values.cursor as string | undefined,
          },
          print: printHostTable,
        };
      case 'get':
        return { method: 'GET', path: '/admin/hosts/get', query: { hostname: hostname() }, print: printJson };
      case 'add':
      case 'block':
      case 'unblock':
      case 'reconnect':
        return {
          method: 'POST',
          path: `/admin/hosts/${verb}`,
          body: { hostname: hostname() },
          print: printHostResult(`${verb}ed`),
        };
      case 'reset-cursor': {
        const name = hostname();
        const raw = positionals[3];
        let cursor: number | null = null;
        if (raw !== undefined && raw !== 'none') {
          if (!/^\d{1,16}$/.test(raw))
            throw new UsageError(`SEQ must be a non-negative integer or "none", got ${raw}`);
          cursor = Number(raw);
        }
        return {
          method: 'POST',
          path: '/admin/hosts/reset-cursor',
          body: { hostname: name, cursor },
          print: printHostResult('cursor reset for'),
        };
      }
      default:
        throw new UsageError(`unknown host command "${verb}"`);
    }
  }
  if (group === 'repo' && verb === 'get') {
    return {
      method: 'GET',
      path: '/admin/repos/get',
      query: { did: need(positionals, 2, 'DID') },
      print: printJson,
    };
  }
  if (group === 'takedown') {
    const did = need(positionals, 1, 'DID');
    const reason = values.reason as string | undefined;
    return {
      method: 'POST',
      path: '/admin/repos/takedown',
      body: reason === undefined ? { did } : { did, reason },
      print: (_j, out) => out(`taken down: ${did}\n`),
    };
  }
  if (group === 'reverse-takedown') {
    const did = need(positionals, 1, 'DID');
    return {
      method: 'POST',
      path: '/admin/repos/reverse-takedown',
      body: { did },
      print: (_j, out) => out(`takedown reversed: ${did}\n`),
    };
  }
  throw new UsageError(
    group === undefined ? 'missing command' : `unknown command "${positionals.join(' ')}"`,
  );
}

/** Runs `atrelay admin` with these arguments; resolves with the exit code (0 ok, 1 refused/failed, 2 usage). */
export async function runAdminCli(argv: readonly string[], io: AdminCliIo): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  let req: Request;
  try {
    parsed = parse(argv);
    if (parsed.values.help) {
      io.out(`${ADMIN_USAGE}\n`);
      return 0;
    }
    req = toRequest(parsed.positionals, parsed.values);
  } catch (err) {
    io.err(`atrelay admin: ${(err as Error).message}\n${ADMIN_USAGE}\n`);
    return 2;
  }
  const v = parsed.values;
  const base = (v.admin ?? io.env.RELAY_ADMIN_URL ?? 'http://127.0.0.1:2470').replace(/\/+$/, '');
  const token = v.token ?? io.env.RELAY_ADMIN_PASSWORD;
  const url = new URL(`${base}${req.path}`);
  for (const [k, val] of Object.entries(req.query ?? {})) if (val !== undefined) url.searchParams.set(k, val);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  try {
    const res = await io.fetcher.request(url.href, {
      method: req.method,
      headers: req.body ? { ...headers, 'content-type': 'application/json' } : headers,
      body: req.body ? JSON.stringify(req.body) : undefined,
      acceptStatus: () => true,
      timeoutMs: 60_000,
      maxResponseBytes: 16 * 1024 * 1024,
    });
    const text = Buffer.from(res.body).toString('utf8');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (res.status < 200 || res.status > 299) {
      const e = json as { error?: unknown; message?: unknown } | undefined;
      const what = e?.error ? `${String(e.error)}: ${String(e.message ?? '')}` : text.slice(0, 500);
      const hint =
        res.status === 404 && e?.error === 'NotFound' && /disabled/.test(String(e.message))
          ? ' (set RELAY_ADMIN_PASSWORD on the relay)'
          : res.status === 401
            ? ' (pass --token or set RELAY_ADMIN_PASSWORD)'
            : '';
      io.err(`atrelay admin: HTTP ${res.status} ${what}${hint}\n`);
      return 1;
    }
    if (v.json) printJson(json, io.out);
    else req.print(json, io.out);
    return 0;
  } catch (err) {
    const detail = err instanceof HttpStatusError ? ` ${err.bodyPreview}` : '';
    io.err(`atrelay admin: ${(err as Error).message}${detail} (is the relay at ${base}?)\n`);
    return 1;
  }
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      admin: { type: 'string' },
      token: { type: 'string' },
      json: { type: 'boolean' },
      status: { type: 'string' },
      limit: { type: 'string' },
      cursor: { type: 'string' },
      reason: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}
