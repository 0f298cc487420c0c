// Test helpers for the JetStream backend: the machine's NATS server
// (TEST_NATS_URL, default nats://127.0.0.1:4222), a unique stream name per
// test, and removal of every stream (and takedown bucket) a test made.
// Never skipped: like PostgreSQL, NATS is part of the test environment.
import { randomBytes } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';

export const NATS_URL = process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222';

/** A stream name no other test (or concurrent test process) uses. */
export function uniqueStreamName(prefix = 't'): string {
  return `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

/** Deletes the streams and their takedown KV buckets; missing ones are fine. */
export async function deleteStreams(names: readonly string[]): Promise<void> {
  if (names.length === 0) return;
  const nc = await connect({ servers: NATS_URL });
  try {
    const jsm = await jetstreamManager(nc);
    for (const n of names) {
      for (const s of [n, `KV_${n}-takedowns`]) await jsm.streams.delete(s).catch(() => false);
    }
  } finally {
    await nc.close();
  }
}
