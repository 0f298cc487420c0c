// One-line rendering of a backfill status for a terminal, e.g.
//   [########..............]  12/700 collections  1,234,567 pairs  3,400/s  ETA 5m12s
// Kept free of I/O so the CLI and tests share it.
import type { BackfillStatus } from './backfill.ts';

export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m${String(r).padStart(2, '0')}s`;
  return `${r}s`;
}

export function formatProgress(st: BackfillStatus, width = 24): string {
  const frac = st.itemsTotal > 0 ? Math.min(1, st.itemsDone / st.itemsTotal) : st.state === 'done' ? 1 : 0;
  const filled = Math.round(frac * width);
  const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
  const unit = st.source === 'hosts' ? 'hosts' : 'collections';
  const parts = [
    bar,
    `${st.itemsDone}/${st.itemsTotal} ${unit}`,
    `${st.pairsImported.toLocaleString('en-US')} pairs`,
    `${st.pairsPerSec.toLocaleString('en-US')}/s`,
  ];
  if (st.source === 'hosts') parts.push(`${st.accountsScanned.toLocaleString('en-US')} accounts`);
  if (st.state === 'running')
    parts.push(st.etaSeconds === null ? 'ETA ?' : `ETA ${formatDuration(st.etaSeconds)}`);
  else parts.push(st.state);
  if (st.errors > 0) parts.push(`${st.errors} errors`);
  return parts.join('  ');
}
