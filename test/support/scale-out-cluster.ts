// A scale-out deployment for the process-level tests (docs/scale-out.md):
// `npm start` processes in the ingest or fan-out role sharing a JetStream
// stream (the event log, plus its leases bucket) and a PostgreSQL schema
// (the metadata store), both made for the test and removed by remove(),
// which also SIGKILLs every process still running.
import { join } from 'node:path';
import pg from 'pg';
import { deleteStreams, NATS_URL, uniqueStreamName } from './nats.ts';
import { type RelayProcess, spawnRelay } from './relay-process.ts';
import { tempDir } from './temp.ts';

export const PG_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** A relay process's unlabelled metric, read from its metrics port (0 when absent). */
export async function processMetric(r: RelayProcess, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${r.metricsPort}/metrics`)).text();
  const m = text.match(new RegExp(`^${name} (\\S+)$`, 'm'));
  return m ? Number(m[1]) : 0;
}

export class ScaleOutCluster {
  /** The JetStream stream; also the PostgreSQL schema's name. */
  readonly stream: string;
  readonly schema: string;
  /** The processes started and not yet killed through kill(). */
  readonly procs = new Set<RelayProcess>();
  private readonly dataDir: string;

  constructor(prefix: string) {
    this.stream = uniqueStreamName(prefix);
    this.schema = this.stream;
    this.dataDir = tempDir(`atrelay-${prefix}-`);
  }

  /** DATABASE_URL for the cluster's schema. */
  get databaseUrl(): string {
    return `${PG_URL}?options=-c%20search_path%3D${this.schema}`;
  }

  /** Makes the schema (the first process migrates it). */
  async createSchema(): Promise<void> {
    await this.sql(`CREATE SCHEMA ${this.schema}`);
  }

  /**
   * Starts process `n` of `role` against the PLC at `plcUrl`, with the
   * simulated hosts' rate limits lifted and short host leases.
   */
  async start(role: 'ingest' | 'fanout', n: number, plcUrl: string): Promise<RelayProcess> {
    const p = await spawnRelay({
      RELAY_PORT: '0',
      RELAY_METRICS_PORT: '0',
      RELAY_BIND: '127.0.0.1',
      RELAY_PLC_URL: plcUrl,
      RELAY_UPSTREAM: 'none',
      RELAY_ALLOW_INSECURE_HOSTS: 'true',
      RELAY_ADMIN_PASSWORD: 'scale-out-test',
      RELAY_HOST_RATE_PER_SECOND: '100000',
      RELAY_HOST_RATE_PER_HOUR: '1000000000',
      RELAY_HOST_RATE_PER_DAY: '1000000000',
      DATABASE_URL: this.databaseUrl,
      RELAY_EVENTLOG: 'nats',
      RELAY_NATS_URL: NATS_URL,
      RELAY_NATS_STREAM: this.stream,
      RELAY_HOST_LEASE_SECONDS: '3',
      RELAY_NATS_DUPLICATE_WINDOW_SECONDS: '120',
      RELAY_COLLECTIONS_CLEANER_INTERVAL_SECONDS: '0',
      ...(process.env.ATRELAY_TEST_RELAY_LOG ? { RELAY_LOG_LEVEL: 'debug' } : {}),
      RELAY_ROLE: role,
      RELAY_DATA_DIR: join(this.dataDir, `${role}-${n}`),
    });
    this.procs.add(p);
    return p;
  }

  /** SIGKILLs a process and waits for it to exit. */
  async kill(p: RelayProcess): Promise<void> {
    p.child.kill('SIGKILL');
    await p.exited;
    this.procs.delete(p);
  }

  /** Kills what runs, deletes the stream and the leases bucket, drops the schema. */
  async remove(): Promise<void> {
    for (const p of this.procs) p.child.kill('SIGKILL');
    this.procs.clear();
    await deleteStreams([this.stream, `KV_${this.stream}-leases`]);
    await this.sql(`DROP SCHEMA IF EXISTS ${this.schema} CASCADE`);
  }

  private async sql(text: string): Promise<void> {
    const db = new pg.Client({ connectionString: PG_URL });
    await db.connect();
    try {
      await db.query(text);
    } finally {
      await db.end();
    }
  }
}
