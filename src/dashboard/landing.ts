// The page at `/` on the public port: a short plain HTML page saying what
// this service is (an atproto relay), where its firehose is, which sync
// endpoints it serves, its version and uptime, as other relays do. The Host
// header is client input: it is bounded and HTML-escaped before it is shown.

export interface LandingInfo {
  version: string;
  uptimeSeconds: number;
  /** The request's Host header (unchecked client input). */
  host: string | undefined;
  https: boolean;
}

const SYNC_ENDPOINTS = [
  'com.atproto.sync.subscribeRepos',
  'com.atproto.sync.getLatestCommit',
  'com.atproto.sync.getRepoStatus',
  'com.atproto.sync.listRepos',
  'com.atproto.sync.listReposByCollection',
  'com.atproto.sync.getRepo',
  'com.atproto.sync.listHosts',
  'com.atproto.sync.getHostStatus',
  'com.atproto.sync.requestCrawl',
];

export function escapeHtml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );
}

export function formatUptime(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return d > 0 ? `${d}d ${h}h ${m}m` : h > 0 ? `${h}h ${m}m` : `${m}m ${s % 60}s`;
}

export function landingPage(info: LandingInfo): string {
  const rawHost = (info.host ?? '').slice(0, 255);
  const host = /^[A-Za-z0-9.:[\]-]+$/.test(rawHost) ? rawHost : 'this-relay';
  const ws = info.https ? 'wss' : 'ws';
  const http = info.https ? 'https' : 'http';
  const firehose = `${ws}://${host}/xrpc/com.atproto.sync.subscribeRepos`;
  const endpoints = SYNC_ENDPOINTS.map((m) => `<li><code>${m}</code></li>`).join('\n      ');
  return `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>atrelay: an AT Protocol relay</title>
  <style>body{font:15px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#222}code{background:#f3f3f3;padding:0 .25rem}</style>
</head>
<body>
  <h1>atrelay</h1>
  <p>This is an <a href="https://atproto.com/">AT Protocol</a> relay: it subscribes to the repository
  event streams of personal data servers (PDS hosts), verifies each event, and serves them as one
  firehose. It is a server for programs; there is nothing to sign up for here.</p>
  <p>Firehose: <code>${escapeHtml(firehose)}</code></p>
  <p>Sync endpoints (XRPC, under <code>${escapeHtml(`${http}://${host}/xrpc/`)}</code>):</p>
  <ul>
      ${endpoints}
  </ul>
  <p>Version ${escapeHtml(info.version)} · up ${escapeHtml(formatUptime(info.uptimeSeconds))} ·
  numbers at <a href="/_stats"><code>/_stats</code></a> · operators: <a href="/admin/">/admin/</a></p>
</body>
</html>
`;
}
