// A separate process that subscribes to many simulated hosts and counts the
// frames it receives, so throughput runs measure what actually crosses the
// sockets without the counter competing with the generator's event loop.
// Usage: node --import tsx sim/count-frames.ts ws://… ws://… ; prints one
// JSON line every 200 ms ({frames, bytes, elapsedMs, activeMs: first to last
// frame}) and a final line on
// SIGTERM/stdin end.
import WebSocket from 'ws';

const urls = process.argv.slice(2);
let frames = 0;
let bytes = 0;
let firstAt = 0;
let lastAt = 0;
let open = 0;
const start = performance.now();
const sockets = urls.map((url) => {
  const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
  ws.on('open', () => {
    if (++open === urls.length) process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
  });
  ws.on('message', (data: Buffer) => {
    lastAt = performance.now();
    if (frames === 0) firstAt = lastAt;
    frames++;
    bytes += data.length;
  });
  ws.on('error', (err) => process.stderr.write(`${url}: ${err.message}\n`));
  return ws;
});

function report(final = false): void {
  const elapsedMs = Math.round(performance.now() - start);
  const activeMs = Math.round(lastAt - firstAt);
  process.stdout.write(`${JSON.stringify({ frames, bytes, elapsedMs, activeMs, final })}\n`);
}

const timer = setInterval(report, 200);
function finish(): void {
  clearInterval(timer);
  report(true);
  for (const ws of sockets) ws.terminate();
  process.exit(0);
}
process.on('SIGTERM', finish);
process.stdin.on('end', finish);
process.stdin.resume();
