// The one way the relay opens a PostgreSQL pool (metadata store, collection
// index): the schema name checked before it reaches a connection option, a
// bounded connect time, idle-connection errors logged instead of thrown, and
// on every new connection a liveness check for the server's side.
//
// The liveness check (client_connection_check_interval) is about writes from
// a dead process. Without it, a statement waiting on a lock when this process
// dies (SIGKILL, a crash) stays queued in its backend, and once the lock is
// released the server runs it and commits it: a write landing after whoever
// took over from this process wrote newer state (an ingest process's account
// status after the survivor's; an account status is not rev-gated like a
// head). With it the backend polls its client socket while it waits and
// gives up. Tested by src/store/postgres-dead-writer.test.ts. PostgreSQL 14
// and later; an older server refuses the setting, which is logged once and
// otherwise ignored (the SET is queued ahead of the connection's first
// query, because the pool emits 'connect' before handing the client out).
import pg from 'pg';
import type { Logger } from '../log.ts';

const SCHEMA_RE = /^[a-z_][a-z0-9_]{0,62}$/;

/** How often a backend running (or lock-waiting on) one of our statements checks that we are still connected. */
export const CONNECTION_CHECK_INTERVAL_MS = 1000;

export interface PgPoolOptions {
  connectionString: string;
  /** A schema to use instead of `public` (tests); a plain lower-case identifier. */
  schema?: string;
  max: number;
  connectTimeoutMs: number;
  log: Logger;
  /** What the pool is for, in log lines. */
  purpose: string;
}

let warnedNoConnectionCheck = false;

/** Throws on a bad schema name; the pool connects lazily, on its first query. */
export function createPgPool(opts: PgPoolOptions): pg.Pool {
  if (opts.schema !== undefined && !SCHEMA_RE.test(opts.schema)) {
    throw new Error(`invalid PostgreSQL schema name: ${opts.schema}`);
  }
  const pool = new pg.Pool({
    connectionString: opts.connectionString,
    max: opts.max,
    connectionTimeoutMillis: opts.connectTimeoutMs,
    options: opts.schema ? `-c search_path=${opts.schema}` : undefined,
  });
  pool.on('error', (err) =>
    opts.log.error({ err, purpose: opts.purpose }, 'idle PostgreSQL connection failed'),
  );
  pool.on('connect', (client) => {
    client.query(`SET client_connection_check_interval = ${CONNECTION_CHECK_INTERVAL_MS}`).catch((err) => {
      if (warnedNoConnectionCheck) return;
      warnedNoConnectionCheck = true;
      opts.log.warn(
        { err },
        'PostgreSQL refused client_connection_check_interval (it needs 14+): a statement waiting on a lock when this process dies may still run',
      );
    });
  });
  return pool;
}
