import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Counter, Registry } from 'prom-client';
import { waitFor } from '../../test/support/wait.ts';
import { type HealthState, handleMetrics, handleProbe } from './health.ts';
import { notFound } from './response.ts';

describe('health probes and metrics', () => {
  const state: HealthState = { ready: false, checks: [], checkTimeoutMs: 100 };
  const registry = new Registry();
  let server: Server;
  let base: string;

  before(async () => {
    new Counter({ name: 'test_things_total', help: 'things', registers: [registry] }).inc(3);
    server = createServer(async (req, res) => {
      if (await handleProbe(req, res, state)) return;
      if (await handleMetrics(req, res, registry)) return;
      notFound(res);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  const get = async (path: string): Promise<{ status: number; body: Record<string, unknown> }> => {
    const res = await fetch(base + path);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  it('/_healthz is liveness, always 200', async () => {
    assert.deepEqual(await get('/_healthz'), { status: 200, body: { status: 'ok' } });
  });

  it('/_readyz follows the ready flag', async () => {
    assert.equal((await get('/_readyz')).status, 503);
    state.ready = true;
    assert.equal((await get('/_readyz')).status, 200);
  });

  it('/_health runs the checks: ok, failing, and hung (timed out)', async () => {
    state.checks = [{ name: 'store', check: () => {} }];
    let r = await get('/_health');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.checks, { store: 'ok' });
    state.checks.push({
      name: 'log',
      check: () => {
        throw new Error('log closed');
      },
    });
    state.checks.push({ name: 'db', check: () => new Promise<void>(() => {}) });
    r = await get('/_health');
    assert.equal(r.status, 503);
    assert.equal(r.body.status, 'error');
    assert.deepEqual(r.body.checks, { store: 'ok', log: 'log closed', db: 'check timed out after 100 ms' });
  });

  it('/_health: concurrent probes share one run of the checks', async () => {
    let runs = 0;
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    const saved = state.checks;
    state.checks = [
      {
        name: 'store',
        check: async () => {
          runs++;
          await held;
        },
      },
    ];
    const shared = { ...state, checkTimeoutMs: 60_000 };
    const results: Promise<boolean>[] = [];
    const { PassThrough } = await import('node:stream');
    for (let i = 0; i < 50; i++) {
      // Plain objects standing in for req/res: only the path and the answer matter here.
      const res = Object.assign(new PassThrough(), {
        statusCode: 0,
        writeHead(status: number) {
          this.statusCode = status;
          return this;
        },
      });
      results.push(handleProbe({ url: '/_health' } as never, res as never, shared));
    }
    await waitFor(() => runs > 0, 'the checks started');
    release();
    await Promise.all(results);
    assert.equal(runs, 1, 'one run of the checks for 50 concurrent probes');
    // A later probe runs them again.
    await handleProbe(
      { url: '/_health' } as never,
      Object.assign(new PassThrough(), { writeHead: () => undefined }) as never,
      shared,
    );
    assert.equal(runs, 2);
    state.checks = saved;
  });

  it('/_stats only when a provider is set', async () => {
    assert.equal((await get('/_stats')).status, 404);
    state.stats = async () => ({ hosts: { total: 3 } });
    assert.deepEqual(await get('/_stats'), { status: 200, body: { hosts: { total: 3 } } });
    state.stats = async () => {
      throw new Error('store down');
    };
    const r = await get('/_stats');
    assert.equal(r.status, 503);
    assert.equal(r.body.error, 'StatsUnavailable');
  });

  it('/metrics in Prometheus text format', async () => {
    const res = await fetch(`${base}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
    assert.match(await res.text(), /^test_things_total 3$/m);
  });
});
