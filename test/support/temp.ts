// Temporary storage for tests, made and removed in one place: a directory
// under the OS temp dir, a SQLite metadata store in one, and a file event log
// in one with the settings tests run it with (no fsync: a test process is not
// a power cut; no retention timer). Each test file used to keep its own list
// of directories and its own after() to remove them. Everything made here is
// removed when the test process exits (`node --test` runs every file in a
// process of its own), even when a test failed half way; `destroy()` /
// `removeTempDir()` remove one earlier, for tests that make many.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type FileEventLog, type FileEventLogOptions, openEventLog } from '../../src/eventlog/file-log.ts';
import type { MetadataStore } from '../../src/store/metadata-store.ts';
import { type OpenMetadataStoreOptions, openMetadataStore } from '../../src/store/open-store.ts';

const madeDirs = new Set<string>();

/** At exit: best effort (a child process killed a moment ago may still be writing; a leftover temp dir fails nothing). */
function removeAllTempDirs(): void {
  for (const dir of madeDirs) {
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      // left for the OS's temp cleaning
    }
  }
  madeDirs.clear();
}

/** A fresh, empty directory under the OS temp dir, removed when the process exits. */
export function tempDir(prefix = 'atrelay-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (madeDirs.size === 0) process.once('exit', removeAllTempDirs);
  madeDirs.add(dir);
  return dir;
}

/** Removes a directory made by tempDir now (what it holds must be closed first). */
export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  madeDirs.delete(dir);
}

/** The file event log settings tests use: no fsync, no retention timer. */
export const TEST_EVENT_LOG_OPTIONS = { fsync: false, gcIntervalMs: 0 } as const;

/**
 * Opens a file event log with TEST_EVENT_LOG_OPTIONS under `options.dir`, by
 * default a fresh temp dir; `options` override the test settings too.
 */
export function openTempEventLog(options: Partial<FileEventLogOptions> = {}): Promise<FileEventLog> {
  return openEventLog({ ...TEST_EVENT_LOG_OPTIONS, ...options, dir: options.dir ?? tempDir('atrelay-log-') });
}

/** A SQLite metadata store in a temp dir, which it can reopen and remove. */
export interface TempMetadataStore {
  /** The open store (replaced by reopen). */
  store: MetadataStore;
  /** Its data directory. */
  dir: string;
  /** Closes the store and opens the same database again. */
  reopen(): Promise<MetadataStore>;
  /** Closes the store and removes its directory. */
  destroy(): Promise<void>;
}

/**
 * Opens a SQLite metadata store in a fresh temp dir. cursorFlushMs defaults to
 * 0 (host cursors reach the database only on flushCursors() or close());
 * `options` override it and anything else openMetadataStore takes.
 */
export async function tempMetadataStore(
  options: Partial<OpenMetadataStoreOptions> = {},
): Promise<TempMetadataStore> {
  const dir = options.dataDir ?? tempDir('atrelay-store-');
  const open = () => openMetadataStore({ cursorFlushMs: 0, ...options, dataDir: dir });
  const temp: TempMetadataStore = {
    store: await open(),
    dir,
    async reopen() {
      await temp.store.close();
      temp.store = await open();
      return temp.store;
    },
    async destroy() {
      await temp.store.close();
      removeTempDir(dir);
    },
  };
  return temp;
}
