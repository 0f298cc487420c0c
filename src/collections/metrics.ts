// Prometheus metrics of the collection index, read at scrape time from the
// components' plain stats objects (the components themselves stay free of
// prom-client): upkeep counters (including deletes the proof could not
// decide), backfill progress, cleaner activity and the #sync recompute queue.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { CollectionBackfiller } from './backfill.ts';
import type { CollectionCleaner } from './cleaner.ts';
import type { KnownPairsIndex } from './known-pairs.ts';
import type { SyncRecomputeQueue, SyncRecomputeStats } from './sync-recompute.ts';
import type { CollectionIndexer, UpkeepStats } from './upkeep.ts';

export interface CollectionMetricsSources {
  indexer?: CollectionIndexer;
  /** The known-pairs cache in front of the index store (known-pairs.ts). */
  knownPairs?: KnownPairsIndex;
  backfiller?: CollectionBackfiller;
  cleaner?: CollectionCleaner;
  syncRecompute?: SyncRecomputeQueue;
}

/** A counter that follows a monotonically growing number. */
function followCounter(r: Registry, name: string, help: string, read: () => number): void {
  let last = 0;
  new Counter({
    name,
    help,
    registers: [r],
    collect() {
      const v = read();
      if (v > last) this.inc(v - last);
      last = Math.max(last, v);
    },
  });
}

export function registerCollectionMetrics(r: Registry, src: CollectionMetricsSources): void {
  const ix = src.indexer;
  if (ix) {
    const upkeep: [keyof UpkeepStats, string][] = [
      ['commits', 'Commits applied to the collection index'],
      ['pairsAdded', 'Collection index pairs added (firehose and resync)'],
      ['pairsRemoved', 'Collection index pairs removed (firehose and resync)'],
      [
        'deletesDecided',
        "Deletes whose effect on the account's collections was decided from the commit proof",
      ],
      ['deletesUndecided', 'Deletes the commit blocks could not decide (queued as pending checks)'],
      ['resyncs', 'Accounts whose collections were recomputed from their repo'],
    ];
    for (const [key, help] of upkeep) {
      const snake = key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
      followCounter(r, `relay_collections_${snake}_total`, help, () => ix.stats[key]);
    }
  }
  const kp = src.knownPairs;
  if (kp) {
    followCounter(
      r,
      'relay_collections_known_pairs_skipped_total',
      'Pair writes skipped because the pair was known to be in the index already',
      () => kp.skipped,
    );
  }
  const bf = src.backfiller;
  if (bf) {
    new Gauge({
      name: 'relay_collections_backfill_running',
      help: '1 while a collection backfill runs',
      registers: [r],
      collect() {
        this.set(bf.isRunning() ? 1 : 0);
      },
    });
    new Gauge({
      name: 'relay_collections_backfill_items_done',
      help: 'Collections (relay source) or hosts (hosts source) finished in the current backfill job',
      registers: [r],
      collect() {
        this.set(bf.status().itemsDone);
      },
    });
    new Gauge({
      name: 'relay_collections_backfill_pairs_imported',
      help: 'Pairs imported by the current backfill run',
      registers: [r],
      collect() {
        this.set(bf.status().pairsImported);
      },
    });
  }
  const cl = src.cleaner;
  if (cl) {
    followCounter(
      r,
      'relay_collections_cleaner_pairs_removed_total',
      'Pairs removed by the cleaner',
      () => cl.stats.pairsRemoved,
    );
    followCounter(
      r,
      'relay_collections_cleaner_dids_swept_total',
      'DIDs checked by the cleaner sweep',
      () => cl.stats.didsSwept,
    );
    followCounter(
      r,
      'relay_collections_cleaner_pending_settled_total',
      'Pending checks settled',
      () => cl.stats.pendingSettled,
    );
    followCounter(
      r,
      'relay_collections_cleaner_pending_unreadable_total',
      'Pending checks settled undecided because the repo could not be read within the repo limits (pairs kept)',
      () => cl.stats.pendingUnreadable,
    );
  }
  const sq = src.syncRecompute;
  if (sq) {
    const counters: [keyof SyncRecomputeStats, string, string][] = [
      ['recomputes', 'sync_recomputes', 'Accounts whose collections were recomputed after an upstream #sync'],
      [
        'coalesced',
        'sync_recompute_coalesced',
        '#syncs folded into an account already queued for a recompute',
      ],
      [
        'stale',
        'sync_recompute_stale',
        'Fetched repos older than the #sync or a newer commit (fetched again)',
      ],
      ['failed', 'sync_recompute_failed', '#sync recompute fetches that failed'],
      ['gaveUp', 'sync_recompute_gave_up', 'Accounts whose #sync recompute was given up after its attempts'],
      ['overflowed', 'sync_recompute_overflowed', '#syncs left persisted only because the queue was full'],
      [
        'unreadable',
        'sync_recompute_unreadable',
        '#sync recomputes given up at once: the repo is over the repo limits or broken as served',
      ],
    ];
    for (const [key, name, help] of counters)
      followCounter(r, `relay_collections_${name}_total`, help, () => sq.stats[key]);
    new Gauge({
      name: 'relay_collections_sync_recompute_queued',
      help: 'Accounts queued for a recompute after an upstream #sync',
      registers: [r],
      collect() {
        this.set(sq.size);
      },
    });
  }
}
