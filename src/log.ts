// Structured logging (pino, JSON lines on stdout). Modules take a child logger
// with their own `module` field so operators can filter by subsystem.
import { type Logger, pino } from 'pino';

export type { Logger };

export function createLogger(level: string): Logger {
  return pino({ level, base: { service: 'atrelay' } });
}

/** A logger that drops everything: the default for library code and tests. */
export const silentLogger: Logger = pino({ level: 'silent' });
