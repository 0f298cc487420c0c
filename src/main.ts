// Entry point of `atrelay serve` (bin/cli.ts; also runnable as
// `node --import tsx src/main.ts`): read config (env + flags), start the
// relay, stop it cleanly on SIGINT/SIGTERM. A bad setting exits with status 2 and a message naming it.
// The safety net (src/process-guard.ts): an uncaught exception is logged,
// counted and stops the relay gracefully (exit 70); an unhandled rejection is
// logged and counted and the relay keeps running. Signals, a failed start and
// a breach all stop through the same graceful shutdown, bounded by
// RELAY_SHUTDOWN_TIMEOUT_MS; a second signal exits at once.
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConfigError, helpText, loadConfig } from './config/config.ts';
import { createLogger } from './log.ts';
import { EXIT_STORAGE_FAILURE, gracefulShutdown, installProcessGuard } from './process-guard.ts';
import { Relay } from './relay.ts';

/** Runs the relay with these command-line flags until a signal or a fatal error ends the process. */
export async function runServe(argv: readonly string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(helpText());
    return;
  }
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig({ env: process.env, argv });
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`atrelay: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger(config.logLevel, { format: config.logFormat });
  const relay = new Relay(config, log);
  const shutdown = gracefulShutdown({
    log,
    stop: () => relay.stop(),
    timeoutMs: config.shutdownTimeoutMs,
    exit: (code) => process.exit(code),
  });
  installProcessGuard({ log, registry: relay.registry, shutdown });
  // a part of the relay gave up for good (e.g. the event log cannot write): stop, exit 74 (EX_IOERR)
  relay.onFatal((reason) => shutdown(reason, EXIT_STORAGE_FAILURE));
  const onSignal = (signal: NodeJS.Signals) => {
    if (shutdown.started) {
      log.warn({ signal }, 'second signal, exiting now');
      process.exit(1);
    }
    shutdown(`signal ${signal}`, 0);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await relay.start();
  } catch (err) {
    log.fatal({ err }, 'relay failed to start');
    shutdown('start failed', 1);
  }
}

function isMainModule(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (isMainModule()) void runServe(process.argv.slice(2));
