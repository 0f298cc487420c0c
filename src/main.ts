// Entry point: read config (env + flags), start the relay, stop it cleanly on
// SIGINT/SIGTERM. A bad setting exits with status 2 and a message naming it.
import { ConfigError, helpText, loadConfig } from './config/config.ts';
import { createLogger } from './log.ts';
import { Relay } from './relay.ts';

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
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
  const log = createLogger(config.logLevel);
  const relay = new Relay(config, log);
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) {
      log.warn({ signal }, 'second signal, exiting now');
      process.exit(1);
    }
    signalled = true;
    log.info({ signal }, 'shutting down');
    const timer = setTimeout(() => {
      log.error('graceful shutdown timed out');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    timer.unref();
    relay.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'error during shutdown');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await relay.start();
  } catch (err) {
    log.fatal({ err }, 'relay failed to start');
    await relay.stop().catch(() => {});
    process.exit(1);
  }
}

void main();
