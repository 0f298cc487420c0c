// The relay process: wires the stages together and owns the two HTTP servers
// (public: XRPC + firehose + admin API + dashboard + probes; internal: metrics + probes,
// bound to loopback unless RELAY_METRICS_BIND says otherwise). Both servers
// get the connection, timeout and header limits of src/http/server.ts; every
// upgrade socket goes through the UpgradeGuard (error listener first, bounded
// handshakes); "who is the client" is one ClientAddressResolver (trusted
// proxies, IPv6 /64) shared by the API and the firehose. Every HTTP route is
// on the API's routers (src/http/router.ts), the collection index's included;
// the HostManager is the API's HostControl.
//
// The walk of one #commit, each arrow one call, none back up the chain:
//
//   host socket, read on a verify worker (frame check, copy, and the
//   signature and proof checks when it holds the key: ingest/socket-thread.ts)
//     → HostSubscriber.onFrame (seq order, per-host limits, cursor)
//     → Validator.submit (the worker's verdict, or a pool task; released in the repo's order)
//     → EventLog.append (relay seq; durable at its group commit)
//     → CommittedStream (the one fan-out point, with what validation learned)
//     → FirehoseServer (live window, per-consumer outbox) → consumer socket
//
// Beside the firehose, the Jetstream-compatible JSON stream (GET /subscribe,
// src/jetstream) and the collection index subscribe to the same stream;
// a later stage never calls an earlier one (ingest learns its cursor can
// move from the promise Validator.submit returns; the store writes those
// cursors only once the repo heads they pass are stored, through
// Validator.headsWritten wired below, beside the log checkpoint's source).
// Side: the metadata store (hosts, accounts, heads, cursors), the identity
// cache, the HTTP API, the collection index's backfill and cleaner, metrics.
//
// Start-up opens storage first and the network last; shutdown runs the other
// way: stop reading hosts (ingest drains its in-flight frames through
// validation into the log), stop the validator, the collection backfill and
// cleaner, close the firehose and the servers, let the collection index
// finish its updates and close it, close the event log, and finally flush
// host cursors and close the metadata store, so a clean stop re-reads nothing and loses nothing. Tests
// start it in-process with port 0 and may inject DNS and handle resolution.
import { mkdirSync } from 'node:fs';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { createApiHandler, createStatsProvider, registerCacheMetrics } from './api/index.ts';
import {
  CollectionBackfiller,
  CollectionCleaner,
  CollectionIndexer,
  type CollectionIndexStore,
  CollectionIndexUpkeep,
  collectionsAdminRoutes,
  KnownPairsIndex,
  listReposByCollectionRoutes,
  openCollectionIndex,
  registerCollectionMetrics,
  relayAccountStatus,
  repoCollectionsFetcher,
  repoStateFetcher,
  SyncRecomputeQueue,
} from './collections/index.ts';
import type { RelayConfig } from './config/config.ts';
import { createRelayDashboard } from './dashboard/index.ts';
import { CommittedStream } from './eventlog/committed.ts';
import { EventKind, type EventLog, type FileEventLogOptions, openEventLog } from './eventlog/index.ts';
import { openNatsEventLog } from './eventlog/nats-log.ts';
import { FirehoseServer } from './firehose/index.ts';
import { ClientAddressResolver, parseAddressBlocks } from './http/client-address.ts';
import { type HealthState, handleMetrics, handleProbe } from './http/health.ts';
import { notFound } from './http/response.ts';
import {
  closeServer,
  createHttpServer,
  type HttpServerLimits,
  HttpServerMetrics,
  listen,
} from './http/server.ts';
import { UpgradeGuard } from './http/upgrade-guard.ts';
import { CoverageMonitor } from './ingest/coverage.ts';
import { HostLeases } from './ingest/host-leases.ts';
import { HostManager } from './ingest/index.ts';
import { recoverFromLog } from './ingest/log-recovery.ts';
import { AccountReconciler } from './ingest/reconcile.ts';
import { HostReprober } from './ingest/reprobe.ts';
import { SocketThreads } from './ingest/socket-threads.ts';
import { JetstreamServer } from './jetstream/index.ts';
import type { Logger } from './log.ts';
import { DidResolver } from './protocol/identity/did-resolver.ts';
import { addressLookup, createDnsResolver } from './protocol/identity/dns-lookup.ts';
import { HandleResolver, type ResolveTxtFn } from './protocol/identity/handle-resolver.ts';
import { IdentityCache } from './protocol/identity/identity-cache.ts';
import { createSafeFetcher, type LookupFn, type SafeFetcher } from './protocol/identity/safe-fetch.ts';
import type { Host, MetadataStore } from './store/metadata-store.ts';
import { openMetadataStore } from './store/open-store.ts';
import { peekEventDid } from './validate/frame-peek.ts';
import {
  type HandleLookup,
  RepoFetcher,
  repoLimitsFromConfig,
  Validator,
  validationSettingsFromConfig,
} from './validate/index.ts';

/** The relay's version, as /health and the page at `/` report it. */
const RELAY_VERSION = '0.1.0';
/** Repo head writes failing this long in a row make the relay not ready (a moment's failure does not). */
const HEAD_WRITES_NOT_READY_AFTER_MS = 5_000;

/** Injection points for tests and embedding; production uses the defaults. */
export interface RelayDeps {
  /** DNS for every outbound connection (SSRF-checked afterwards). */
  lookup?: LookupFn;
  /** DNS TXT lookups for handle resolution. */
  resolveTxt?: ResolveTxtFn;
  /** Replaces handle resolution entirely (e.g. the simulated network's handle map). */
  handleResolver?: HandleLookup;
  /** Tests only: injected event log write failures (see FileEventLogOptions.writeFault). */
  eventLogWriteFault?: FileEventLogOptions['writeFault'];
}

export class Relay {
  readonly registry = new Registry();
  readonly health: HealthState = { ready: false, checks: [], notReady: [] };
  private readonly fatalListeners = new Set<(reason: string, err: Error) => void>();
  store?: MetadataStore;
  eventLog?: EventLog;
  committed?: CommittedStream;
  firehose?: FirehoseServer;
  jetstream?: JetstreamServer;
  identity?: IdentityCache;
  validator?: Validator;
  hosts?: HostManager;
  /** Coverage figure and stall watchdog (src/ingest/coverage.ts). */
  coverage?: CoverageMonitor;
  /** Account reconciliation sweep (src/ingest/reconcile.ts). */
  reconciler?: AccountReconciler;
  /** Re-probes offline and idle hosts (src/ingest/reprobe.ts). */
  reprober?: HostReprober;
  /** Ingest role only: the host leases this process holds (ingest/host-leases.ts). */
  leases?: HostLeases;
  collectionIndex?: CollectionIndexStore;
  collectionUpkeep?: CollectionIndexUpkeep;
  collectionBackfiller?: CollectionBackfiller;
  collectionCleaner?: CollectionCleaner;
  private api?: (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;
  private dashboard?: (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;
  private publicServer?: Server;
  private metricsServer?: Server;
  private upgrades?: UpgradeGuard;
  private fetcher?: SafeFetcher;
  private repos?: RepoFetcher;
  private stopping?: Promise<void>;

  constructor(
    readonly config: RelayConfig,
    readonly log: Logger,
    private readonly deps: RelayDeps = {},
  ) {
    collectDefaultMetrics({ register: this.registry });
  }

  async start(): Promise<void> {
    const cfg = this.config;
    const log = this.log;
    mkdirSync(cfg.dataDir, { recursive: true });

    // Storage.
    const store = await openMetadataStore({
      databaseUrl: cfg.databaseUrl,
      dataDir: cfg.dataDir,
      // a fan-out node writes no account: cached rows would go stale as the
      // ingest processes write, so its read-only endpoints read PostgreSQL
      ...(cfg.role === 'fanout' ? { cacheSize: 0 } : {}),
      log: log.child({ module: 'store' }),
    });
    this.store = store;
    // Roles (docs/scale-out.md): "all" does everything; "ingest" reads the
    // hosts it holds leases for and publishes to the shared log, serving no
    // firehose; "fanout" reads the shared log and serves consumers, reading no host.
    const role = cfg.role;
    const retentionMs = cfg.retentionHours * 3600_000;
    const retentionBytes = cfg.maxEventsGb > 0 ? Math.floor(cfg.maxEventsGb * 1024 ** 3) : undefined;
    const eventLog: EventLog =
      cfg.eventLog === 'nats'
        ? await openNatsEventLog({
            url: cfg.natsUrl as string,
            stream: cfg.natsStream,
            retentionMs,
            retentionBytes,
            replicas: cfg.natsReplicas,
            duplicateWindowMs: cfg.natsDuplicateWindowSeconds * 1000,
            maxWriteFailureMs: cfg.eventLogMaxWriteFailureSeconds * 1000,
            registry: this.registry,
            logger: log,
          })
        : await openEventLog({
            dir: join(cfg.dataDir, 'events'),
            retentionMs,
            retentionBytes,
            fsync: cfg.eventLogFsync,
            maxWriteFailureMs: cfg.eventLogMaxWriteFailureSeconds * 1000,
            writeFault: this.deps.eventLogWriteFault,
            registry: this.registry,
            logger: log,
          });
    this.eventLog = eventLog;
    // A log that cannot write at all any more ends the relay (main exits non-zero).
    eventLog.onFatal((err) => this.fatal('the event log cannot write', err));
    // The one fan-out point after the durable append: the firehose, the
    // collection index and metrics all follow what was published from here.
    const committed = new CommittedStream(eventLog, { logger: log, registry: this.registry });
    this.committed = committed;
    // every writer of the index goes through the known-pairs cache (collections/known-pairs.ts)
    const collectionIndex = new KnownPairsIndex(
      await openCollectionIndex({ databaseUrl: cfg.databaseUrl, dataDir: cfg.dataDir, logger: log }),
    );
    this.collectionIndex = collectionIndex;

    // Identity and outbound HTTP (every outbound request goes through the SSRF guard).
    const insecure = cfg.allowInsecureHosts;
    // one DNS resolver (RELAY_DNS_SERVERS, else the system's) for every name the relay looks up
    const dns = createDnsResolver(cfg.dnsServers);
    const lookup = this.deps.lookup ?? addressLookup(dns);
    const resolveTxt = this.deps.resolveTxt ?? ((name: string) => dns.resolveTxt(name));
    const fetcher = createSafeFetcher({ allowPrivate: insecure, allowInsecure: insecure, lookup });
    this.fetcher = fetcher;
    const identity = new IdentityCache({
      resolver: new DidResolver({ fetcher, plcUrl: cfg.plcUrl, allowInsecureDidWeb: insecure }),
      ttlMs: cfg.identityTtlSeconds * 1000,
      // kept through a PLC outage: served stale, refreshed in the background
      staleTtlMs: cfg.identityStaleSeconds * 1000,
      logger: log.child({ module: 'identity' }),
    });
    this.identity = identity;
    const handleResolver =
      this.deps.handleResolver ?? new HandleResolver({ fetcher, resolveTxt, allowReservedTlds: insecure });

    // Who is the client (trusted proxies, IPv6 /64): one resolver for every per-client limit and listing.
    const clients = new ClientAddressResolver(parseAddressBlocks(cfg.trustedProxies ?? ''));
    const clientAddress = (req: IncomingMessage): string => clients.address(req);

    // Pipeline: validation feeds the log; the firehose serves it.
    const validationSettings = validationSettingsFromConfig(cfg);
    // Host sockets are read on the verify workers (ingest/socket-threads.ts) when there are any.
    const socketThreads =
      cfg.hostSocketsOnWorkers && validationSettings.workers > 0 && role !== 'fanout'
        ? new SocketThreads()
        : undefined;

    // Collection index upkeep: told about events once they are in the log; an
    // appended #sync queues a recompute of the account from its repo.
    const indexer = new CollectionIndexer(collectionIndex);
    const collectionsLog = log.child({ module: 'collections' });
    // Every getRepo (resync, #sync recompute, cleaner, backfill): size limits, read in a worker.
    const repos = new RepoFetcher({
      fetcher,
      ...repoLimitsFromConfig(cfg),
      registry: this.registry,
      logger: log,
    });
    this.repos = repos;
    const repoFetch = { repos, identity };
    const syncRecompute = new SyncRecomputeQueue({
      indexer,
      fetchRepo: repoStateFetcher(repoFetch),
      onError: (err, did) => collectionsLog.warn({ err, did }, 'collection index #sync recompute failed'),
    });
    const upkeep = new CollectionIndexUpkeep(indexer, collectionsLog, syncRecompute);
    this.collectionUpkeep = upkeep;
    if (role !== 'fanout')
      syncRecompute
        .resume()
        .catch((err) => collectionsLog.warn({ err }, 'collection index #sync resume failed'));
    const validator = new Validator({
      store,
      log: eventLog,
      identity,
      handleResolver,
      fetcher: repos, // a RepoFetcher is a SafeFetcher: resyncs share its limits and workers
      config: validationSettings,
      logger: log,
      registry: this.registry,
      socketThreads,
    });
    this.validator = validator;
    const firehose = new FirehoseServer({
      log: eventLog,
      events: committed,
      maxConsumers: cfg.maxConsumers,
      maxConsumersPerIp: cfg.maxConsumersPerIp,
      outboxMaxBytes: Math.floor(cfg.consumerOutboxMb * 1024 * 1024),
      outboxMaxEvents: cfg.consumerOutboxEvents,
      clientAddress,
      registry: this.registry,
      logger: log,
    });
    this.firehose = firehose;
    // The JSON stream: its own subscriber and outbox limits, the same sizes as the firehose's.
    const jetstream = new JetstreamServer({
      log: eventLog,
      events: committed,
      maxSubscribers: cfg.maxConsumers,
      maxSubscribersPerIp: cfg.maxConsumersPerIp,
      outboxMaxBytes: Math.floor(cfg.consumerOutboxMb * 1024 * 1024),
      outboxMaxEvents: cfg.consumerOutboxEvents,
      clientAddress,
      registry: this.registry,
      logger: log,
    });
    this.jetstream = jetstream;
    // after the firehose: consumers first, derived state second
    committed.subscribe('collection-index', upkeep.onCommitted);
    if (cfg.eventLog === 'nats') {
      // The shared log is also the broadcast of account changes: another
      // process's #account/#identity event (no meta: not ours) drops our cached row.
      committed.subscribe('account-cache', (events) => {
        for (const e of events) {
          if (e.meta || (e.kind !== EventKind.account && e.kind !== EventKind.identity)) continue;
          const did = peekEventDid(e.frame, e.kind === EventKind.account ? '#account' : '#identity');
          if (did) store.forgetCachedAccount?.(did);
        }
      });
    }
    const leases =
      role === 'ingest'
        ? await HostLeases.open({
            url: cfg.natsUrl as string,
            bucket: `${cfg.natsStream}-leases`,
            ttlMs: cfg.hostLeaseSeconds * 1000,
            replicas: cfg.natsReplicas,
            logger: log,
            registry: this.registry,
          })
        : undefined;
    this.leases = leases;
    const hosts = new HostManager({
      leases,
      store,
      sink: validator,
      fetcher,
      config: cfg,
      log,
      registry: this.registry,
      lookup,
      dial: socketThreads?.dial,
      logHead: () => eventLog.head(),
      resyncNow: (did) => validator.requestResync(did),
    });
    this.hosts = hosts;
    // Exactly once through crashes (src/ingest/log-recovery.ts): the stored
    // cursors come with a log checkpoint below which nothing needs rechecking.
    store.setLogCheckpointSource(() =>
      Math.min(eventLog.head(), hosts.logMark() ?? Number.POSITIVE_INFINITY, validator.headFloor() - 1),
    );
    // ...and no stored cursor passes a frame whose repo head is not stored
    // (what an ingest process, which has no log scan, relies on: head-writer.ts).
    store.setCursorWriteBarrier(() => validator.headsWritten());

    // Collection index backfill and cleaner (both use the SSRF-safe fetcher).
    const backfiller = new CollectionBackfiller({
      store: collectionIndex,
      fetcher,
      repos,
      defaultCollectionsFrom: cfg.collectionsKnownNsids,
    });
    this.collectionBackfiller = backfiller;
    const cleaner = new CollectionCleaner({
      store: collectionIndex,
      accountStatus: relayAccountStatus(store),
      fetchCollections: repoCollectionsFetcher(repoFetch),
      syncQueue: syncRecompute,
      intervalMs: cfg.collectionsCleanerIntervalSeconds * 1000,
      onError: (err) => log.warn({ err, module: 'collections' }, 'collection index cleaner error'),
    });
    this.collectionCleaner = cleaner;
    registerCollectionMetrics(this.registry, {
      indexer,
      backfiller,
      cleaner,
      syncRecompute,
      knownPairs: collectionIndex,
    });

    // Self-healing (issue 18): how much of the network is carried (and a
    // reconnect for streams that stalled while their host writes), and
    // offline/idle hosts probed back on a back-off schedule.
    const coverage = new CoverageMonitor({
      store,
      live: () => hosts.list(),
      fetcher,
      reconnect: (hostId) => hosts.reconnect(hostId),
      ingestPaused: () => hosts.pausedFor.length > 0,
      settings: {
        currentWithinMs: cfg.coverageCurrentWithinSeconds * 1000,
        sampleIntervalMs: cfg.coverageSampleSeconds * 1000,
        sampleRepos: cfg.coverageSampleRepos,
        readyThreshold: cfg.coverageReadyThreshold,
      },
      log,
      registry: this.registry,
    });
    this.coverage = coverage;
    const reconciler = new AccountReconciler({
      store,
      live: () => hosts.list(),
      fetcher,
      repairs: validator,
      unwrittenHead: (did) => validator.unwrittenHead(did),
      ingestPaused: () => hosts.pausedFor.length > 0,
      settings: {
        intervalMs: cfg.reconcileIntervalSeconds * 1000,
        accountsPerHostPerHour: cfg.reconcileAccountsPerHostPerHour,
        graceMs: cfg.reconcileGraceSeconds * 1000,
      },
      log,
      registry: this.registry,
    });
    this.reconciler = reconciler;
    const reprober = new HostReprober({
      store,
      fetcher,
      revive: (hostId) => hosts.reconnect(hostId),
      settings: { baseMs: cfg.hostReprobeBaseSeconds * 1000, maxMs: cfg.hostReprobeMaxSeconds * 1000 },
      log,
      registry: this.registry,
    });
    this.reprober = reprober;

    // HTTP surface.
    const stats = createStatsProvider({
      store,
      eventLog,
      firehose,
      identity,
      extra: () => ({
        coverage: coverage.report(),
        reprobes: reprober.schedule().slice(0, 20),
        reconcile: reconciler.report(),
      }),
    });
    this.health.stats = stats;
    // `/` and the web UI under /admin/ (src/dashboard); other /admin/ paths are the API's.
    this.dashboard = createRelayDashboard({
      registry: this.registry,
      store,
      hosts,
      resolveHandle: (handle) => handleResolver.resolve(handle),
      adminPassword: cfg.adminPassword,
      clientAddress,
      version: RELAY_VERSION,
    });
    this.api = createApiHandler({
      store,
      eventLog,
      accounts: validator,
      unwrittenHead: (did) => validator.unwrittenHead(did),
      firehose,
      hosts,
      adminPassword: cfg.adminPassword,
      requestCrawlPerIpPerMinute: cfg.requestCrawlPerIpPerMinute,
      newHostsPerDay: cfg.newHostsPerDay,
      identity,
      stats,
      routes: {
        xrpc: [listReposByCollectionRoutes(collectionIndex)],
        admin: [collectionsAdminRoutes({ store: collectionIndex, backfiller })],
      },
      onAccountStatus: (did, status) => upkeep.accountStatus(did, status),
      clientAddress,
      registry: this.registry,
      logger: log,
    });
    registerCacheMetrics(this.registry, { store, identity });
    this.health.checks.push(
      { name: 'metadata_store', check: () => store.healthCheck() },
      {
        name: 'event_log',
        check: () => {
          if (eventLog.head() < 0) throw new Error('event log not open');
          const w = eventLog.getWriteState();
          if (w.failing)
            throw new Error(
              `writes failing since ${new Date(w.since ?? 0).toISOString()}: ${w.error?.message}`,
            );
        },
      },
    );
    // While the log cannot write, nothing can be relayed: ingest pauses (no
    // host is dropped or re-dialled, nothing is skipped) and readiness fails.
    const paused = 'event-log-write-failing';
    eventLog.onWriteState((w) => (w.failing ? hosts.pauseReading(paused) : hosts.resumeReading(paused)));
    this.health.notReady = this.health.notReady ?? [];
    this.health.notReady.push(() => {
      const w = eventLog.getWriteState();
      return w.failing ? `event log writes failing: ${w.error?.message ?? 'unknown error'}` : undefined;
    });
    this.health.notReady.push(() => coverage.notReadyReason());
    // Repo head writes failing for a while (retried; cursors and, past a
    // bound, ingest wait for them: validate/head-writer.ts).
    this.health.notReady.push(() => {
      const since = validator.headWritesFailingSince();
      return since !== undefined && Date.now() - since >= HEAD_WRITES_NOT_READY_AFTER_MS
        ? `repo head writes failing since ${new Date(since).toISOString()}`
        : undefined;
    });
    new Gauge({
      name: 'relay_up_since_seconds',
      help: 'Unix time the relay finished starting',
      registers: [this.registry],
    }).set(Date.now() / 1000);
    // The main thread is the one that cannot scale out: its busy time next to
    // process_cpu_seconds_total tells how the work splits with the workers.
    let elu = performance.eventLoopUtilization();
    new Counter({
      name: 'relay_main_thread_busy_seconds_total',
      help: 'Time the main thread event loop spent running code rather than waiting (event-loop utilisation)',
      registers: [this.registry],
      collect() {
        const now = performance.eventLoopUtilization();
        this.inc(Math.max(0, (now.active - elu.active) / 1000));
        elu = now;
      },
    });

    const limits: HttpServerLimits = {
      headersTimeoutMs: cfg.httpHeadersTimeoutMs,
      requestTimeoutMs: cfg.httpRequestTimeoutMs,
      keepAliveTimeoutMs: cfg.httpKeepAliveTimeoutMs,
      idleTimeoutMs: cfg.httpIdleTimeoutMs,
      maxHeaderBytes: cfg.httpMaxHeaderBytes,
      maxHeaders: cfg.httpMaxHeaders,
      maxConnections: cfg.maxConnections,
    };
    const httpMetrics = new HttpServerMetrics(this.registry);
    const httpLog = log.child({ module: 'http' });
    const publicServer = createHttpServer(
      'public',
      (req, res) => this.handlePublic(req, res),
      limits,
      httpLog,
      httpMetrics,
    );
    this.publicServer = publicServer;
    const upgrades = new UpgradeGuard({
      // an ingest process serves no firehose: consumers go to the fan-out nodes
      handler: (req, socket, head, opened) =>
        role !== 'ingest' &&
        (firehose.handleUpgrade(req, socket, head, opened) ||
          jetstream.handleUpgrade(req, socket, head, opened)),
      maxPending: cfg.maxPendingUpgrades,
      timeoutMs: cfg.upgradeTimeoutMs,
      log: httpLog,
      registry: this.registry,
    });
    this.upgrades = upgrades;
    publicServer.on('upgrade', (req, socket, head) => upgrades.handle(req, socket, head));
    await listen(publicServer, 'public', cfg.host, cfg.port, httpLog, httpMetrics);
    const metricsServer = createHttpServer(
      'metrics',
      (req, res) => this.handleInternal(req, res),
      { ...limits, maxConnections: cfg.metricsMaxConnections },
      httpLog,
      httpMetrics,
    );
    this.metricsServer = metricsServer;
    await listen(metricsServer, 'metrics', cfg.metricsHost, cfg.metricsPort, httpLog, httpMetrics);

    // Network last: learn from the log's tail what a crash left half done,
    // resubscribe saved hosts, then bootstrap from the seed relay.
    // A fan-out node reads no host. An ingest process shares the log with
    // others: its exactly-once rests on the message-id dedupe (a scan of the
    // shared tail would repair heads under another process's feet).
    if (role === 'all') {
      const recovered = await recoverFromLog({
        log: eventLog,
        store,
        logger: log.child({ module: 'ingest' }),
      });
      await hosts.start(recovered);
      // Coverage and re-probes judge every host against this process's
      // subscribers: meaningful only where one process reads them all.
      coverage.start();
      reprober.start();
      reconciler.start();
    } else if (role === 'ingest' && leases) {
      await hosts.start();
      leases.start({
        listActiveHosts: () => listActiveHosts(store),
        adopt: (h) => hosts.adopt(h),
        release: (id) => hosts.release(id),
      });
    }
    if (role !== 'fanout' && cfg.collectionsCleanerIntervalSeconds > 0) cleaner.start();
    new Gauge({
      name: 'relay_role_info',
      help: 'The role of this process (RELAY_ROLE) and its event log backend, as labels',
      labelNames: ['role', 'eventlog'],
      registers: [this.registry],
    }).set({ role, eventlog: cfg.eventLog }, 1);
    this.health.ready = true;
    log.info(
      {
        port: this.port,
        bind: cfg.host,
        metricsPort: this.metricsPort,
        metricsBind: cfg.metricsHost,
        trustedProxies: cfg.trustedProxies ?? null,
        dataDir: cfg.dataDir,
        role,
        eventLog: cfg.eventLog,
      },
      'relay started',
    );
  }

  /**
   * Called when a part of the relay gives up for good (e.g. the event log
   * cannot write for RELAY_EVENTLOG_MAX_WRITE_FAILURE_SECONDS): main.ts stops
   * the relay and exits non-zero rather than limp on.
   */
  onFatal(listener: (reason: string, err: Error) => void): void {
    this.fatalListeners.add(listener);
  }

  private fatal(reason: string, err: Error): void {
    this.log.fatal({ err }, reason);
    this.health.ready = false;
    for (const l of this.fatalListeners) l(reason, err);
  }

  get port(): number {
    return (this.publicServer?.address() as AddressInfo | null)?.port ?? 0;
  }

  /** Where the public server listens (null before start). */
  get publicAddress(): AddressInfo | null {
    return (this.publicServer?.address() as AddressInfo | null) ?? null;
  }

  /** Where the metrics server listens (null before start). */
  get metricsAddress(): AddressInfo | null {
    return (this.metricsServer?.address() as AddressInfo | null) ?? null;
  }

  get metricsPort(): number {
    return (this.metricsServer?.address() as AddressInfo | null)?.port ?? 0;
  }

  private async handlePublic(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (await handleProbe(req, res, this.health)) return;
    if (this.dashboard && (await this.dashboard(req, res))) return;
    if (this.api && (await this.api(req, res))) return;
    notFound(res);
  }

  private async handleInternal(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (await handleProbe(req, res, this.health)) return;
    if (await handleMetrics(req, res, this.registry)) return;
    notFound(res);
  }

  /** Graceful shutdown; safe to call more than once, and after a failed start. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.health.ready = false;
      this.log.info('relay stopping');
      await Promise.all([this.coverage?.stop(), this.reprober?.stop(), this.reconciler?.stop()]);
      await this.hosts?.stop();
      await this.leases?.close(); // after ingest stopped: the hosts move to the others at once
      await this.validator?.close();
      await Promise.all([this.collectionBackfiller?.stop(), this.collectionCleaner?.stop()]);
      await this.repos?.close();
      this.upgrades?.close();
      await Promise.all([this.firehose?.close(), this.jetstream?.close()]);
      await Promise.all([closeServer(this.publicServer), closeServer(this.metricsServer)]);
      await this.collectionUpkeep?.drain();
      await this.collectionIndex?.close();
      await this.eventLog?.close();
      await this.store?.close();
      await this.fetcher?.close();
      this.log.info('relay stopped');
    })();
    return this.stopping;
  }
}

/** Every active host in the store (the lease balancer's candidates). */
async function listActiveHosts(store: MetadataStore): Promise<Host[]> {
  const out = [];
  for (let after: number | undefined; ; ) {
    const page = await store.listHosts({ status: 'active', after, limit: 1000 });
    out.push(...page);
    if (page.length < 1000) return out;
    after = page[page.length - 1].id;
  }
}
