// Relay configuration: the settings (settings.ts) read from environment
// variables and CLI flags (flags win), each with a documented default and a
// parser (parsers.ts) that rejects bad values with an error naming the
// setting; then the checks that involve several settings at once. Also the
// `--help` text. The table is the single source for validation, `--help` and
// docs/configuration.md; this file is the mechanics and the public entry.
import { ConfigError, type Setting } from './parsers.ts';
import { type RelayConfig, SETTINGS } from './settings.ts';

export { ConfigError, type EventLogBackend, type RelayRole } from './parsers.ts';
export type { RelayConfig } from './settings.ts';

export interface LoadConfigInput {
  env?: Record<string, string | undefined>;
  argv?: readonly string[];
}

/**
 * Reads the configuration from the environment and CLI flags (`--flag value`
 * or `--flag=value`; a boolean flag alone means true). Unknown flags and bad
 * values throw a ConfigError naming the setting.
 */
export function loadConfig(input: LoadConfigInput = {}): RelayConfig {
  const env = input.env ?? process.env;
  const flags = parseFlags(input.argv ?? []);
  const out: Record<string, unknown> = {};
  for (const [key, s] of Object.entries(SETTINGS) as [string, Setting<unknown>][]) {
    const fromFlag = flags.get(s.flag);
    const fromEnv = env[s.env];
    if (fromFlag !== undefined) out[key] = s.parse(fromFlag, `${s.flag} (${s.env})`);
    else if (fromEnv !== undefined) out[key] = s.parse(fromEnv, s.env);
    else out[key] = s.default;
  }
  const cfg = out as RelayConfig;
  if (cfg.port !== 0 && cfg.port === cfg.metricsPort) {
    throw new ConfigError('RELAY_METRICS_PORT', `must differ from RELAY_PORT (${cfg.port})`);
  }
  if (cfg.eventLog === 'nats' && !cfg.natsUrl) {
    throw new ConfigError('RELAY_NATS_URL', 'required when RELAY_EVENTLOG=nats');
  }
  if (cfg.role !== 'all' && cfg.eventLog !== 'nats') {
    throw new ConfigError('RELAY_ROLE', `"${cfg.role}" needs the shared log: set RELAY_EVENTLOG=nats`);
  }
  if (cfg.role !== 'all' && !cfg.databaseUrl) {
    throw new ConfigError('RELAY_ROLE', `"${cfg.role}" needs the shared metadata store: set DATABASE_URL`);
  }
  if (cfg.natsDuplicateWindowSeconds <= cfg.hostLeaseSeconds) {
    throw new ConfigError(
      'RELAY_NATS_DUPLICATE_WINDOW_SECONDS',
      `must exceed RELAY_HOST_LEASE_SECONDS (${cfg.hostLeaseSeconds}) so a moved host's re-sent events are deduplicated`,
    );
  }
  if (cfg.httpRequestTimeoutMs < cfg.httpHeadersTimeoutMs) {
    throw new ConfigError(
      'RELAY_HTTP_REQUEST_TIMEOUT_MS',
      `must be at least RELAY_HTTP_HEADERS_TIMEOUT_MS (${cfg.httpHeadersTimeoutMs})`,
    );
  }
  return cfg;
}

function parseFlags(argv: readonly string[]): Map<string, string> {
  const known = new Map<string, Setting<unknown>>();
  for (const s of Object.values(SETTINGS) as Setting<unknown>[]) known.set(s.flag, s);
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.indexOf('=');
    const name = eq >= 0 ? arg.slice(0, eq) : arg;
    const s = known.get(name);
    if (!s) throw new ConfigError(name, 'unknown command-line flag (see --help)');
    if (eq >= 0) {
      flags.set(name, arg.slice(eq + 1));
    } else if (typeof s.default === 'boolean' && (i + 1 >= argv.length || argv[i + 1].startsWith('--'))) {
      flags.set(name, 'true');
    } else {
      if (i + 1 >= argv.length) throw new ConfigError(name, 'missing value');
      flags.set(name, argv[++i]);
    }
  }
  return flags;
}

/** The `--help` text: every setting with its flag, variable and default. */
export function helpText(): string {
  const lines = [
    'Usage: atrelay serve [flags]     (from a checkout: npm start -- [flags])',
    '',
    'Every flag can also be set by its environment variable.',
    '',
  ];
  for (const s of Object.values(SETTINGS) as Setting<unknown>[]) {
    const def = s.default === undefined ? '(unset)' : String(s.default);
    lines.push(`  ${s.flag.padEnd(24)} ${s.env.padEnd(28)} default ${def}`);
    lines.push(`  ${''.padEnd(24)} ${s.describe}`);
  }
  return lines.join('\n');
}
