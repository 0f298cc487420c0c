// Start-up and shutdown of the real entry point, as `npm start` runs it, and
// its safety net: errors that escape every handler (injected by a preloaded
// test fixture) are logged and counted; an uncaught exception stops the relay
// cleanly with status 70, an unhandled rejection does not stop it.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { startMain } from '../test/support/main-process.ts';
import { tempDir } from '../test/support/temp.ts';
import { WAIT_DEADLINE_MS } from '../test/support/wait.ts';
import { decodeFrame } from './protocol/frames.ts';

const root = new URL('..', import.meta.url).pathname;

function startRelay(env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: root,
    env: { ...process.env, RELAY_UPSTREAM: 'none', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

function waitForLog(child: ChildProcess, msg: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(
      () => reject(new Error(`timed out waiting for "${msg}": ${buf}`)),
      WAIT_DEADLINE_MS,
    );
    child.stdout?.on('data', (chunk: Buffer) => {
      buf += chunk.toString();
      for (const line of buf.split('\n')) {
        if (!line.startsWith('{')) continue;
        const rec = JSON.parse(line) as Record<string, unknown>;
        if (rec.msg === msg) {
          clearTimeout(timer);
          resolve(rec);
        }
      }
    });
    child.once('exit', (code) => reject(new Error(`exited with ${code} before "${msg}": ${buf}`)));
  });
}

function exitCode(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });
}

describe('main', () => {
  it('starts with embedded storage, serves health on both ports, and stops on SIGTERM', async () => {
    const dataDir = tempDir('atrelay-main-');
    const child = startRelay({ RELAY_PORT: '0', RELAY_METRICS_PORT: '0', RELAY_DATA_DIR: dataDir });
    try {
      const started = await waitForLog(child, 'relay started');
      const port = started.port as number;
      const metricsPort = started.metricsPort as number;
      for (const p of [port, metricsPort]) {
        const res = await fetch(`http://127.0.0.1:${p}/_health`);
        assert.equal(res.status, 200);
        assert.equal(((await res.json()) as { status: string }).status, 'ok');
        assert.equal((await fetch(`http://127.0.0.1:${p}/_healthz`)).status, 200);
        assert.equal((await fetch(`http://127.0.0.1:${p}/_readyz`)).status, 200);
      }
      const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
      assert.equal(metrics.status, 200);
      assert.match(await metrics.text(), /process_resident_memory_bytes/);
      assert.equal((await fetch(`http://127.0.0.1:${port}/nope`)).status, 404);
      // The firehose is mounted: an empty log answers a cursor beyond the head with FutureCursor.
      const ws = new WebSocket(`ws://127.0.0.1:${port}/xrpc/com.atproto.sync.subscribeRepos?cursor=5`);
      const [frame, closeCode] = await new Promise<[Uint8Array, number]>((resolve, reject) => {
        let first: Uint8Array | undefined;
        ws.on('message', (data: Buffer) => {
          first ??= new Uint8Array(data);
        });
        ws.on('close', (code) =>
          first ? resolve([first, code]) : reject(new Error(`closed ${code} without a frame`)),
        );
        ws.on('error', reject);
      });
      const decoded = decodeFrame(frame);
      assert.equal(decoded.header.op, -1);
      assert.equal(decoded.body.error, 'FutureCursor');
      assert.equal(closeCode, 1008);
      child.kill('SIGTERM');
      assert.equal(await exitCode(child), 0);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('an uncaught exception is logged, counted and stops the relay cleanly with status 70', async () => {
    const dataDir = tempDir('atrelay-main-');
    const main = startMain(
      { RELAY_PORT: '0', RELAY_METRICS_PORT: '0', RELAY_DATA_DIR: dataDir, ATRELAY_TEST_FAULT: 'throw' },
      ['./test/fixtures/inject-fault.ts'],
    );
    try {
      assert.equal(await main.exitCode(), 70, main.stderr());
      const fatal = main.logs.find((r) => r.msg === 'uncaught exception: invariant breach, stopping');
      assert.ok(fatal, 'the exception is logged');
      assert.match(JSON.stringify(fatal.err), /injected fault: thrown from a callback/);
      // The graceful stop ran to its end (storage closed) before the exit.
      assert.ok(main.logs.some((r) => r.msg === 'relay stopped'));
    } finally {
      main.child.kill('SIGKILL');
    }
  });

  it('an unhandled rejection is logged and counted; the relay keeps serving', async () => {
    const dataDir = tempDir('atrelay-main-');
    const main = startMain(
      { RELAY_PORT: '0', RELAY_METRICS_PORT: '0', RELAY_DATA_DIR: dataDir, ATRELAY_TEST_FAULT: 'reject' },
      ['./test/fixtures/inject-fault.ts'],
    );
    try {
      const started = await main.waitForLog('relay started');
      const logged = await main.waitForLog('unhandled promise rejection (relay keeps running)');
      assert.match(JSON.stringify(logged.err), /injected fault: rejection nobody handles/);
      assert.equal((await fetch(`http://127.0.0.1:${started.port}/_healthz`)).status, 200);
      const metrics = await (await fetch(`http://127.0.0.1:${started.metricsPort}/metrics`)).text();
      assert.match(metrics, /relay_process_errors_total\{kind="unhandled_rejection"\} 1/);
      assert.ok(main.alive());
      main.child.kill('SIGTERM');
      assert.equal(await main.exitCode(), 0);
    } finally {
      main.child.kill('SIGKILL');
    }
  });

  it('refuses a bad setting with a message naming it', async () => {
    const child = startRelay({ RELAY_PORT: 'not-a-port' });
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    assert.equal(await exitCode(child), 2);
    assert.match(stderr, /RELAY_PORT/);
  });
});
