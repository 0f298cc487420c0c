// One least-recently-used map for every bounded cache in the relay (identity,
// accounts, known collection pairs, rate-limit buckets, key objects, ...).
//
// Why not the usual JS idiom (a Map in insertion order, "touch" = delete +
// set, evict = `map.keys().next()`): V8's Map leaves a hole for every delete
// until the table is rebuilt, and a fresh iterator walks every hole at the
// front before it finds the first live key. Evicting the oldest entry again
// and again, as a full cache does on every miss, deletes at the front, so each
// eviction re-walks all the holes the previous ones left: measured 11–14 µs
// per eviction at 10,000 entries and 23–78 µs at 100,000–250,000
// (src/lru.bench.ts, and a bare loop of the idiom), on the main thread, for
// every new DID a host sends once the cache is full. Touching on every hit
// also filled the table with holes and rebuilt it over and over.
//
// Here the Map only indexes; recency is an intrusive doubly linked list
// through the entries, so get, set, delete and evicting the oldest are O(1)
// pointer moves: no hole walk, no rehash on a hit, no allocation on a hit.
// The order is exact LRU (most recent at the head, eviction at the tail).

interface Node<K, V> {
  key: K;
  value: V;
  /** Towards the most recent end (null at the head). */
  newer: Node<K, V> | null;
  /** Towards the least recent end (null at the tail). */
  older: Node<K, V> | null;
}

export class Lru<K, V> {
  private readonly index = new Map<K, Node<K, V>>();
  private newest: Node<K, V> | null = null;
  private oldest: Node<K, V> | null = null;

  /**
   * @param capacity entries kept; `set` evicts the least recent beyond it
   *   (Infinity: the owner evicts, e.g. by bytes, with `evictOldest`).
   */
  constructor(readonly capacity: number) {
    if (!(capacity >= 0)) throw new Error(`invalid LRU capacity: ${capacity}`);
  }

  get size(): number {
    return this.index.size;
  }

  /** The value, made the most recent. */
  get(key: K): V | undefined {
    const n = this.index.get(key);
    if (n === undefined) return undefined;
    this.toFront(n);
    return n.value;
  }

  /** The value, without changing its recency. */
  peek(key: K): V | undefined {
    return this.index.get(key)?.value;
  }

  /** Inserts or replaces as the most recent, then evicts the least recent beyond capacity. */
  set(key: K, value: V): void {
    const n = this.index.get(key);
    if (n !== undefined) {
      n.value = value;
      this.toFront(n);
      return;
    }
    if (this.capacity === 0) return;
    const node: Node<K, V> = { key, value, newer: null, older: this.newest };
    if (this.newest) this.newest.newer = node;
    else this.oldest = node;
    this.newest = node;
    this.index.set(key, node);
    while (this.index.size > this.capacity) this.evictOldest();
  }

  /** Replaces the value of a present key without changing its recency; false if absent. */
  replace(key: K, value: V): boolean {
    const n = this.index.get(key);
    if (n === undefined) return false;
    n.value = value;
    return true;
  }

  delete(key: K): boolean {
    const n = this.index.get(key);
    if (n === undefined) return false;
    this.index.delete(key);
    this.unlink(n);
    return true;
  }

  /** Removes and returns the least recent entry. */
  evictOldest(): [K, V] | undefined {
    const n = this.oldest;
    if (n === null) return undefined;
    this.index.delete(n.key);
    this.unlink(n);
    return [n.key, n.value];
  }

  clear(): void {
    this.index.clear();
    this.newest = null;
    this.oldest = null;
  }

  /**
   * Entries from the least to the most recent. While iterating, the entry just
   * yielded may be deleted; any other change to the cache ends or skews the walk.
   */
  *entries(): IterableIterator<[K, V]> {
    for (let n = this.oldest; n !== null; ) {
      const next: Node<K, V> | null = n.newer;
      yield [n.key, n.value];
      n = next;
    }
  }

  private toFront(n: Node<K, V>): void {
    if (n === this.newest) return;
    this.unlink(n);
    n.older = this.newest;
    n.newer = null;
    if (this.newest) this.newest.newer = n;
    else this.oldest = n;
    this.newest = n;
  }

  private unlink(n: Node<K, V>): void {
    if (n.newer) n.newer.older = n.older;
    else this.newest = n.older;
    if (n.older) n.older.newer = n.newer;
    else this.oldest = n.newer;
    n.newer = null;
    n.older = null;
  }
}
