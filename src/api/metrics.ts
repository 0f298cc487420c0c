// The API's own Prometheus metrics: requests by route and status, and latency
// by route. Route labels are the fixed route paths (or "other"), never the raw
// URL, so a client cannot create unbounded label values. Pipeline metrics
// (events, validation, log, consumers, hosts, identity cache) are registered by
// their own stages on the same Registry.
import { Counter, Histogram, type Registry } from 'prom-client';

export interface ApiMetrics {
  observe(route: string, method: string, status: number, seconds: number): void;
}

export const noMetrics: ApiMetrics = { observe() {} };

export function createApiMetrics(registry: Registry): ApiMetrics {
  const requests = new Counter({
    name: 'relay_api_requests_total',
    help: 'HTTP API requests (XRPC and admin), by route, method and status',
    labelNames: ['route', 'method', 'status'],
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'relay_api_request_duration_seconds',
    help: 'HTTP API request latency by route',
    labelNames: ['route'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  return {
    observe(route, method, status, seconds) {
      requests.inc({ route, method, status: String(status) });
      latency.observe({ route }, seconds);
    },
  };
}
