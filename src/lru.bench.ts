// The LRU (lru.ts) against the Map idiom it replaced (touch = delete + set,
// evict = map.keys().next()), at the sizes the relay's caches run at: a full
// cache taking a new key (evict + insert) and a hit on a uniformly chosen key.
// CPU time per operation (process.cpuUsage).
//
//   node --import tsx src/lru.bench.ts
import { Lru } from './lru.ts';

function cpuNs(ops: number, fn: () => void): number {
  const t = process.cpuUsage();
  fn();
  const u = process.cpuUsage(t);
  return ((u.user + u.system) * 1000) / ops;
}

const keys = (n: number) =>
  Array.from({ length: n }, (_, i) => `did:plc:${i.toString(36).padStart(24, 'x')}`);

function mapIdiom(size: number, ops: number): { evict: number; hit: number } {
  const m = new Map<string, number>();
  const ks = keys(size + ops);
  for (let i = 0; i < size; i++) m.set(ks[i], i);
  const evict = cpuNs(ops, () => {
    for (let i = size; i < size + ops; i++) {
      m.set(ks[i], i);
      const oldest = m.keys().next().value;
      if (oldest !== undefined) m.delete(oldest);
    }
  });
  const live = [...m.keys()];
  const hit = cpuNs(ops, () => {
    for (let i = 0; i < ops; i++) {
      const k = live[(i * 7919) % live.length];
      const v = m.get(k);
      if (v !== undefined) {
        m.delete(k);
        m.set(k, v);
      }
    }
  });
  return { evict, hit };
}

function lru(size: number, ops: number): { evict: number; hit: number } {
  const c = new Lru<string, number>(size);
  const ks = keys(size + ops);
  for (let i = 0; i < size; i++) c.set(ks[i], i);
  const evict = cpuNs(ops, () => {
    for (let i = size; i < size + ops; i++) c.set(ks[i], i);
  });
  const live = [...c.entries()].map(([k]) => k);
  const hit = cpuNs(ops, () => {
    for (let i = 0; i < ops; i++) c.get(live[(i * 7919) % live.length]);
  });
  return { evict, hit };
}

console.log('entries    Map idiom: evict+insert / hit (ns)    Lru: evict+insert / hit (ns)');
for (const size of [2_000, 10_000, 100_000, 250_000]) {
  const ops = 100_000;
  const a = mapIdiom(size, ops);
  const b = lru(size, ops);
  console.log(
    `${String(size).padStart(7)}    ${a.evict.toFixed(0).padStart(12)} / ${a.hit.toFixed(0).padEnd(20)}${b.evict.toFixed(0).padStart(12)} / ${b.hit.toFixed(0)}`,
  );
}
