// Health probes and the metrics endpoint (the relay's server calls them
// before the API; src/relay.ts). zlay serves probes on both ports and
// metrics only on the internal one; we do the same, so that a load balancer
// can probe the public port while Prometheus scrapes the private one.
// `/_healthz` is liveness (the process answers), `/_readyz` readiness (start-up
// finished and no degrading condition holds, e.g. event log writes failing), `/_health` runs every store check with a time limit so a hung
// database shows as an error instead of a hung probe, and `/_stats` serves the
// counts-at-a-glance provider when the relay sets one (src/api/stats.ts).
// `/_health` is public, so concurrent probes share one run of the checks: a
// flood of probes costs the database one check at a time, not one per request.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { sendJson } from './response.ts';

export interface HealthCheck {
  name: string;
  check: () => Promise<void> | void;
}

export interface HealthState {
  /** true once start-up (stores opened, servers listening) has finished */
  ready: boolean;
  checks: HealthCheck[];
  /**
   * Conditions that make the relay not ready although it started (e.g. the
   * event log cannot write): each returns the reason, or undefined when fine.
   * /_readyz answers 503 with the reasons while any holds.
   */
  notReady?: (() => string | undefined)[];
  /** Serves `/_stats` when set. */
  stats?: () => Promise<unknown>;
  /** Time limit per check in ms (default 2,000). */
  checkTimeoutMs?: number;
}

type CheckResults = { ok: boolean; checks: Record<string, string> };

/** The run of the checks in progress per state; probes arriving meanwhile wait for it. */
const inFlight = new WeakMap<HealthState, Promise<CheckResults>>();

function sharedChecks(state: HealthState): Promise<CheckResults> {
  let run = inFlight.get(state);
  if (!run) {
    run = runChecks(state).finally(() => inFlight.delete(state));
    inFlight.set(state, run);
  }
  return run;
}

async function runChecks(state: HealthState): Promise<CheckResults> {
  const checks: Record<string, string> = {};
  let ok = true;
  const limit = state.checkTimeoutMs ?? 2000;
  for (const c of state.checks) {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        Promise.resolve().then(() => c.check()),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`check timed out after ${limit} ms`)), limit);
        }),
      ]);
      checks[c.name] = 'ok';
    } catch (err) {
      ok = false;
      checks[c.name] = err instanceof Error ? err.message : String(err);
    } finally {
      clearTimeout(timer);
    }
  }
  return { ok, checks };
}

/** Handles probe paths; returns false when the path is not a probe. */
export async function handleProbe(
  req: IncomingMessage,
  res: ServerResponse,
  state: HealthState,
): Promise<boolean> {
  const path = (req.url ?? '/').split('?')[0];
  if (path === '/_healthz') {
    sendJson(res, 200, { status: 'ok' });
    return true;
  }
  if (path === '/_readyz') {
    if (!state.ready) {
      sendJson(res, 503, { status: 'starting' });
      return true;
    }
    const reasons = (state.notReady ?? []).map((f) => f()).filter((r): r is string => r !== undefined);
    if (reasons.length > 0) sendJson(res, 503, { status: 'degraded', reasons });
    else sendJson(res, 200, { status: 'ok' });
    return true;
  }
  if (path === '/_health') {
    const { ok, checks } = await sharedChecks(state);
    sendJson(res, ok ? 200 : 503, { status: ok ? 'ok' : 'error', version: '0.1.0', checks });
    return true;
  }
  if (path === '/_stats' && state.stats) {
    try {
      sendJson(res, 200, await state.stats());
    } catch (err) {
      sendJson(res, 503, {
        error: 'StatsUnavailable',
        message: err instanceof Error ? err.message : String(err),
      });
    }
    return true;
  }
  return false;
}

export async function handleMetrics(
  req: IncomingMessage,
  res: ServerResponse,
  registry: Registry,
): Promise<boolean> {
  const path = (req.url ?? '/').split('?')[0];
  if (path !== '/metrics') return false;
  const body = await registry.metrics();
  res.writeHead(200, { 'content-type': registry.contentType });
  res.end(body);
  return true;
}
