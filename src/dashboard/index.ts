// The operator's dashboard (the page at `/` and the web UI under /admin/):
// what the relay wires in. createRelayDashboard builds the handler from the
// relay's parts; the pieces are exported for tests.
import type { IncomingMessage } from 'node:http';
import type { Registry } from 'prom-client';
import type { HostControl } from '../ingest/host-control.ts';
import type { MetadataStore } from '../store/metadata-store.ts';
import { createDashboardHandler, type DashboardHandler } from './handler.ts';
import { HostsTable } from './hosts-table.ts';
import { OverviewSampler } from './overview.ts';

export { createDashboardHandler, type DashboardDeps, type DashboardHandler } from './handler.ts';
export { HostsTable } from './hosts-table.ts';
export { histogramQuantile, OverviewSampler } from './overview.ts';
export { SessionStore } from './sessions.ts';

export interface RelayDashboardParts {
  registry: Registry;
  store: MetadataStore;
  hosts?: Pick<HostControl, 'liveState'>;
  resolveHandle?: (handle: string) => Promise<string | null | undefined>;
  adminPassword?: string;
  clientAddress?: (req: IncomingMessage) => string;
  version: string;
}

export function createRelayDashboard(parts: RelayDashboardParts): DashboardHandler {
  const sampler = new OverviewSampler({ registry: parts.registry });
  return createDashboardHandler({
    adminPassword: parts.adminPassword,
    sampler,
    hostsTable: new HostsTable({ store: parts.store, hosts: parts.hosts, rates: () => sampler.hostRates() }),
    resolveHandle: parts.resolveHandle,
    version: parts.version,
    clientAddress: parts.clientAddress,
  });
}
