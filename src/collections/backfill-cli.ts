// Command-line client for the collection backfill: starts one through the
// relay's admin API (or just watches / stops the running one) and draws a
// progress bar until it ends. A terminal gets one line redrawn in place;
// a pipe gets a line every few seconds. Run as `atrelay backfill …` (bin/cli.ts)
// or directly from the sources:
//
//   node --import tsx src/collections/backfill-cli.ts --relay https://relay1.us-east.bsky.network \
//     [--collections-from FILE|URL] [--collection NSID]... [--restart]
//   node --import tsx src/collections/backfill-cli.ts --hosts https://pds1.example,https://pds2.example
//   node --import tsx src/collections/backfill-cli.ts --watch | --stop
// Common: --admin URL (default http://127.0.0.1:2470), --token (default $RELAY_ADMIN_PASSWORD).
// A local --collections-from file is read here and sent as `collections`: the
// admin API accepts only http(s) URLs there (a request may not name a file on
// the relay's disk). Writes are sent as application/json, as the admin API requires.
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { createSafeFetcher, HttpStatusError, type SafeFetcher } from '../protocol/identity/safe-fetch.ts';
import { type BackfillSource, type BackfillStatus, parseNsidList } from './backfill.ts';
import { formatProgress } from './progress.ts';

export interface CliIo {
  fetcher: SafeFetcher;
  write: (s: string) => void;
  isTty: boolean;
  pollMs: number;
}

const USAGE =
  'usage: atrelay backfill (--relay URL [--collections-from F] [--collection NSID]... | --hosts URL,URL | --watch | --stop) [--admin URL] [--token T] [--restart]';

/** Runs the CLI; resolves with the exit code. */
export async function runBackfillCli(argv: string[], io: CliIo): Promise<number> {
  let args: ReturnType<typeof parse>;
  try {
    args = parse(argv);
  } catch (err) {
    io.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const v = args.values;
  const admin = (v.admin ?? 'http://127.0.0.1:2470').replace(/\/+$/, '');
  const token = v.token ?? process.env.RELAY_ADMIN_PASSWORD;
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const endpoint = `${admin}/admin/collections/backfill`;

  try {
    if (v.stop) {
      await io.fetcher.request(`${endpoint}/stop`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body: '{}',
      });
      io.write('stopped\n');
      return 0;
    }
    if (v.relay || v.hosts) {
      const from = v['collections-from'];
      const fromUrl = from !== undefined && /^https?:\/\//.test(from);
      const collections =
        from !== undefined && !fromUrl
          ? [...(v.collection ?? []), ...parseNsidList(await readFile(from, 'utf8'))]
          : v.collection;
      const source: BackfillSource = v.relay
        ? {
            kind: 'relay',
            url: v.relay,
            collections,
            collectionsFrom: fromUrl ? from : undefined,
            restart: v.restart,
          }
        : { kind: 'hosts', hosts: (v.hosts ?? '').split(',').filter(Boolean), restart: v.restart };
      const res = await io.fetcher.request(endpoint, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body: JSON.stringify(source),
        acceptStatus: (s) => s === 202 || s === 409 || s === 400,
      });
      if (res.status !== 202) {
        io.write(`refused (${res.status}): ${Buffer.from(res.body).toString('utf8')}\n`);
        return 1;
      }
    } else if (!v.watch) {
      io.write(`${USAGE}\n`);
      return 2;
    }
    let lastLine = 0;
    for (;;) {
      const st = (await io.fetcher.getJson(endpoint, { headers })).json as BackfillStatus;
      const line = formatProgress(st);
      const ended = st.state !== 'running';
      if (io.isTty) io.write(`\r${line}\x1b[K${ended ? '\n' : ''}`);
      else if (ended || Date.now() - lastLine >= 5000) {
        io.write(`${line}\n`);
        lastLine = Date.now();
      }
      if (ended) {
        if (st.lastError) io.write(`last error: ${st.lastError}\n`);
        return st.state === 'done' ? 0 : 1;
      }
      await new Promise((r) => setTimeout(r, io.pollMs));
    }
  } catch (err) {
    const detail = err instanceof HttpStatusError ? ` ${err.bodyPreview}` : '';
    io.write(`\n${(err as Error).message}${detail}\n`);
    return 1;
  }
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      relay: { type: 'string' },
      hosts: { type: 'string' },
      collection: { type: 'string', multiple: true },
      'collections-from': { type: 'string' },
      restart: { type: 'boolean' },
      watch: { type: 'boolean' },
      stop: { type: 'boolean' },
      admin: { type: 'string' },
      token: { type: 'string' },
    },
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  // The admin API is the operator's own relay, usually on loopback.
  const fetcher = createSafeFetcher({ allowPrivate: true, allowInsecure: true });
  runBackfillCli(process.argv.slice(2), {
    fetcher,
    write: (s) => process.stderr.write(s),
    isTty: process.stderr.isTTY === true,
    pollMs: 1000,
  }).then((code) => {
    fetcher.close();
    process.exitCode = code;
  });
}
