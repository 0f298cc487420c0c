// The `atrelay` command line: one entry for what operators do, dispatched by
// subcommand — serve (the relay; the default), backfill (collection index),
// admin (a thin client of the admin API), demo (a simulated network and a
// relay wired to it). bin/atrelay.mjs (the package's `bin`) builds dist/ when
// it is stale and runs the compiled form of this file; under tsx
// (`npm run dev -- …`, tests) it runs from the sources. It lives in bin/, not
// src/, because `demo` imports the simulator (sim/), which src/ may not.
// Each subcommand is imported only when it runs, so `atrelay admin` does not
// load the relay and `atrelay serve` does not load the simulator.

export const USAGE = `atrelay: an AT Protocol (Bluesky) firehose relay

usage: atrelay [command] [arguments]

commands:
  serve [flags]      run the relay (the default when the first argument is a flag or absent);
                     every setting is a flag or an environment variable: atrelay serve --help
  backfill ...       fill the collection index from a relay or from PDS hosts, with a progress bar
  admin ...          the admin API from the command line: hosts (list/add/block/reset-cursor), takedowns
  demo [options]     a simulated network and a relay wired to it, printing the events it relays
  help [command]     this text, or a command's

atrelay <command> --help shows each command's options.`;

const BACKFILL_USAGE = `usage: atrelay backfill (--relay URL [--collections-from FILE|URL] [--collection NSID]... | --hosts URL,URL | --watch | --stop)
                        [--admin URL] [--token PASSWORD] [--restart]

Starts a collection-index backfill through the relay's admin API (or watches or
stops the running one) and draws a progress bar until it ends.
  --relay URL              copy (DID, collection) pairs from a relay's listReposByCollection
  --collections-from F|URL the NSIDs to copy (a local file is read here); --collection NSID adds one
  --hosts URL,URL          list repos on these PDS hosts instead
  --restart                start over instead of resuming
  --watch | --stop         follow / stop the running backfill
  --admin URL              the relay (default http://127.0.0.1:2470)
  --token T                the admin password (default $RELAY_ADMIN_PASSWORD)
See docs/collections.md.`;

type Command = (argv: string[]) => Promise<number | undefined>;

const COMMANDS: Record<string, Command> = {
  serve: async (argv) => {
    const { runServe } = await import('../src/main.ts');
    await runServe(argv);
    return undefined; // the relay runs until a signal; runServe exits the process itself
  },
  backfill: async (argv) => {
    if (argv.includes('--help') || argv.includes('-h')) {
      console.log(BACKFILL_USAGE);
      return 0;
    }
    const { runBackfillCli } = await import('../src/collections/backfill-cli.ts');
    const { createSafeFetcher } = await import('../src/protocol/identity/safe-fetch.ts');
    // The admin API is the operator's own relay, usually on loopback.
    const fetcher = createSafeFetcher({ allowPrivate: true, allowInsecure: true });
    try {
      return await runBackfillCli(argv, {
        fetcher,
        write: (s) => process.stderr.write(s),
        isTty: process.stderr.isTTY === true,
        pollMs: 1000,
      });
    } finally {
      fetcher.close();
    }
  },
  admin: async (argv) => {
    const { runAdminCli } = await import('../src/cli/admin-client.ts');
    const { createSafeFetcher } = await import('../src/protocol/identity/safe-fetch.ts');
    const fetcher = createSafeFetcher({ allowPrivate: true, allowInsecure: true });
    try {
      return await runAdminCli(argv, {
        fetcher,
        out: (s) => process.stdout.write(s),
        err: (s) => process.stderr.write(s),
        env: process.env,
      });
    } finally {
      fetcher.close();
    }
  },
  demo: async (argv) => {
    const { runDemo } = await import('../sim/demo.ts');
    return runDemo(argv);
  },
};

/** Runs the command line; resolves with an exit code, or undefined when the command keeps running (serve). */
export async function runCli(argv: string[]): Promise<number | undefined> {
  const [first, ...rest] = argv;
  if (first === undefined || first.startsWith('-')) {
    if (first === '--help' || first === '-h') {
      console.log(USAGE);
      return 0;
    }
    if (first === '--version' || first === '-v') {
      // bin/cli.ts sits one folder below package.json, dist/bin/cli.js two
      const { readFileSync } = await import('node:fs');
      for (const rel of ['../package.json', '../../package.json']) {
        try {
          const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as {
            name?: string;
            version?: string;
          };
          if (pkg.name === 'atrelay') {
            console.log(pkg.version);
            return 0;
          }
        } catch {}
      }
      return 1;
    }
    return COMMANDS.serve(argv);
  }
  if (first === 'help') {
    const sub = rest[0];
    if (sub && sub in COMMANDS && sub !== 'serve') return COMMANDS[sub](['--help']);
    if (sub === 'serve') return COMMANDS.serve(['--help']);
    console.log(USAGE);
    return 0;
  }
  const command = COMMANDS[first];
  if (!command) {
    console.error(`atrelay: unknown command "${first}"\n\n${USAGE}`);
    return 2;
  }
  return command(rest);
}

const code = await runCli(process.argv.slice(2));
if (code !== undefined) process.exitCode = code;
