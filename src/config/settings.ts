// The settings table: every setting the relay reads, with its environment
// variable, CLI flag, default, one-line description and parser (parsers.ts).
// It is the single source for loadConfig and `--help` (config.ts) and for the
// table in docs/configuration.md (scripts/gen-config-table.ts; a test checks
// that the page lists every variable). A new setting is one entry here.
import type { LogFormat } from '../log.ts';
import {
  addressBlocks,
  autoOrInt,
  bool,
  databaseUrl,
  dnsServers,
  type EventLogBackend,
  eventLogBackend,
  httpUrl,
  int,
  logFormat,
  logLevel,
  natsStream,
  natsUrls,
  num,
  optionalStr,
  port,
  type RelayRole,
  relayRole,
  setting,
  str,
  upstream,
} from './parsers.ts';

/** Every setting the relay reads. Keep docs/configuration.md in step with this table. */
export const SETTINGS = {
  port: setting({
    env: 'RELAY_PORT',
    flag: '--port',
    default: 2470,
    describe: 'HTTP, XRPC and firehose WebSocket port',
    parse: port,
  }),
  metricsPort: setting({
    env: 'RELAY_METRICS_PORT',
    flag: '--metrics-port',
    default: 2471,
    describe: 'Prometheus metrics and health probes port',
    parse: port,
  }),
  host: setting({
    env: 'RELAY_BIND',
    flag: '--bind',
    default: '0.0.0.0',
    describe: 'address the public server (RELAY_PORT) listens on',
    parse: str,
  }),
  metricsHost: setting({
    env: 'RELAY_METRICS_BIND',
    flag: '--metrics-bind',
    default: '127.0.0.1',
    describe: 'address the metrics server (RELAY_METRICS_PORT) listens on; loopback unless set',
    parse: str,
  }),
  trustedProxies: setting<string | undefined>({
    env: 'RELAY_TRUSTED_PROXIES',
    flag: '--trusted-proxies',
    default: undefined,
    describe:
      'comma-separated IPs/CIDRs of reverse proxies whose X-Forwarded-For is believed (right-most untrusted entry is the client); unset: none',
    parse: addressBlocks,
  }),
  httpHeadersTimeoutMs: setting({
    env: 'RELAY_HTTP_HEADERS_TIMEOUT_MS',
    flag: '--http-headers-timeout-ms',
    default: 10000,
    describe: 'time a client has to send a request head (request line and headers); then 408 and close',
    parse: int(100, 600_000),
  }),
  httpRequestTimeoutMs: setting({
    env: 'RELAY_HTTP_REQUEST_TIMEOUT_MS',
    flag: '--http-request-timeout-ms',
    default: 30000,
    describe: 'time a client has to send a whole request, body included (at least the headers timeout)',
    parse: int(100, 3_600_000),
  }),
  httpKeepAliveTimeoutMs: setting({
    env: 'RELAY_HTTP_KEEP_ALIVE_TIMEOUT_MS',
    flag: '--http-keep-alive-timeout-ms',
    default: 5000,
    describe: 'how long an idle keep-alive connection stays open waiting for its next request',
    parse: int(100, 600_000),
  }),
  httpIdleTimeoutMs: setting({
    env: 'RELAY_HTTP_IDLE_TIMEOUT_MS',
    flag: '--http-idle-timeout-ms',
    default: 60000,
    describe:
      'an HTTP connection with no traffic either way for this long is closed (e.g. a client that stopped reading); not firehose consumers',
    parse: int(1000, 3_600_000),
  }),
  httpMaxHeaderBytes: setting({
    env: 'RELAY_HTTP_MAX_HEADER_BYTES',
    flag: '--http-max-header-bytes',
    default: 16384,
    describe: 'largest request head (request line and headers) in bytes; larger: 431 and close',
    parse: int(1024, 1_048_576),
  }),
  httpMaxHeaders: setting({
    env: 'RELAY_HTTP_MAX_HEADERS',
    flag: '--http-max-headers',
    default: 100,
    describe: 'request headers read per request; more are dropped unread',
    parse: int(10, 10_000),
  }),
  maxConnections: setting({
    env: 'RELAY_MAX_CONNECTIONS',
    flag: '--max-connections',
    default: 4096,
    describe:
      'open connections on the public port, firehose and /subscribe consumers included; more are closed on accept (keep above 2 × RELAY_MAX_CONSUMERS: each WebSocket endpoint admits that many)',
    parse: int(1, 1_000_000),
  }),
  metricsMaxConnections: setting({
    env: 'RELAY_METRICS_MAX_CONNECTIONS',
    flag: '--metrics-max-connections',
    default: 64,
    describe: 'open connections on the metrics port; more are closed on accept',
    parse: int(1, 1_000_000),
  }),
  upgradeTimeoutMs: setting({
    env: 'RELAY_UPGRADE_TIMEOUT_MS',
    flag: '--upgrade-timeout-ms',
    default: 10000,
    describe:
      'time from a WebSocket upgrade request to a finished handshake (or, if refused, to the client closing); then the socket is destroyed',
    parse: int(100, 600_000),
  }),
  maxPendingUpgrades: setting({
    env: 'RELAY_MAX_PENDING_UPGRADES',
    flag: '--max-pending-upgrades',
    default: 256,
    describe:
      'sockets between an upgrade request and a finished handshake (or closed refusal) at once; more get 503',
    parse: int(1, 1_000_000),
  }),
  dataDir: setting({
    env: 'RELAY_DATA_DIR',
    flag: '--data-dir',
    default: './data',
    describe: 'directory for the event log and the embedded SQLite database',
    parse: str,
  }),
  databaseUrl: setting<string | undefined>({
    env: 'DATABASE_URL',
    flag: '--database-url',
    default: undefined,
    describe: 'unset: embedded SQLite in the data directory; postgres://…: PostgreSQL',
    parse: databaseUrl,
  }),
  plcUrl: setting({
    env: 'RELAY_PLC_URL',
    flag: '--plc-url',
    default: 'https://plc.directory',
    describe: 'PLC directory used to resolve did:plc',
    parse: httpUrl,
  }),
  upstream: setting<string | undefined>({
    env: 'RELAY_UPSTREAM',
    flag: '--upstream',
    default: 'bsky.network',
    describe: 'seed relay whose listHosts bootstraps the host list; "none" disables bootstrap',
    parse: upstream,
  }),
  adminPassword: setting<string | undefined>({
    env: 'RELAY_ADMIN_PASSWORD',
    flag: '--admin-password',
    default: undefined,
    describe: 'admin API password (bearer token or basic auth); unset: admin API off',
    parse: optionalStr,
  }),
  retentionHours: setting({
    env: 'RELAY_RETENTION_HOURS',
    flag: '--retention-hours',
    default: 72,
    describe: 'how long the event log keeps events for cursor replay',
    parse: num(0.01, 24 * 365),
  }),
  dnsServers: setting<string[]>({
    env: 'RELAY_DNS_SERVERS',
    flag: '--dns-servers',
    default: [],
    describe:
      "DNS servers for every name the relay resolves (hosts, DID documents, handles): comma-separated IP, IP:port or [IPv6]:port; unset: the system's (/etc/resolv.conf)",
    parse: dnsServers,
  }),
  allowInsecureHosts: setting({
    env: 'RELAY_ALLOW_INSECURE_HOSTS',
    flag: '--allow-insecure-hosts',
    default: false,
    describe: 'allow http/ws and loopback hosts such as localhost:PORT (local development and tests only)',
    parse: bool,
  }),
  lenientSync: setting({
    env: 'RELAY_LENIENT_SYNC',
    flag: '--lenient-sync',
    default: false,
    describe: 'log sync 1.1 chain failures and pass the event instead of resyncing the repo',
    parse: bool,
  }),
  validationWorkers: setting<number | 'auto'>({
    env: 'RELAY_VALIDATION_WORKERS',
    flag: '--validation-workers',
    default: 'auto',
    describe:
      'worker threads verifying commits (decode, hashes, signatures, MST proofs); auto: one per core; 0: main thread',
    parse: autoOrInt(0, 256),
  }),
  resyncPerSecond: setting({
    env: 'RELAY_RESYNC_PER_SECOND',
    flag: '--resync-per-second',
    default: 10,
    describe: 'repo resyncs (getRepo after a sync 1.1 chain break) started per second at most',
    parse: num(0.01, 10000),
  }),
  resyncConcurrency: setting({
    env: 'RELAY_RESYNC_CONCURRENCY',
    flag: '--resync-concurrency',
    default: 4,
    describe: 'repo resyncs running at once',
    parse: int(1, 1024),
  }),
  resyncHostConcurrency: setting({
    env: 'RELAY_RESYNC_HOST_CONCURRENCY',
    flag: '--resync-host-concurrency',
    default: 1,
    describe:
      "repo resyncs of one host's accounts running at once (so one host's accounts cannot take every resync slot)",
    parse: int(1, 1024),
  }),
  resyncHostPerSecond: setting({
    env: 'RELAY_RESYNC_HOST_PER_SECOND',
    flag: '--resync-host-per-second',
    default: 1,
    describe:
      "repo resyncs of one host's accounts started per second at most (on top of RELAY_RESYNC_PER_SECOND)",
    parse: num(0.001, 10000),
  }),
  resyncHostMaxQueued: setting({
    env: 'RELAY_RESYNC_HOST_MAX_QUEUED',
    flag: '--resync-host-max-queued',
    default: 1000,
    describe:
      "one host's resyncs waiting before more of its are refused (out of RELAY_RESYNC_MAX_QUEUED; the account is retried later)",
    parse: int(1, 10_000_000),
  }),
  resyncMaxQueued: setting({
    env: 'RELAY_RESYNC_MAX_QUEUED',
    flag: '--resync-max-queued',
    default: 10000,
    describe:
      'resyncs waiting for a slot before more are refused (the account stays desynchronized and is retried later)',
    parse: int(1, 10_000_000),
  }),
  maxRepoMb: setting({
    env: 'RELAY_MAX_REPO_MB',
    flag: '--max-repo-mb',
    default: 128,
    describe:
      'largest repo CAR (MiB) downloaded by getRepo (resync, collection index recompute, cleaner, backfill)',
    parse: int(1, 4095),
  }),
  maxRepoBlocks: setting({
    env: 'RELAY_MAX_REPO_BLOCKS',
    flag: '--max-repo-blocks',
    default: 1_000_000,
    describe: 'most blocks a fetched repo CAR may hold; checked while reading, before memory grows',
    parse: int(1, 100_000_000),
  }),
  repoFetchConcurrency: setting({
    env: 'RELAY_REPO_FETCH_CONCURRENCY',
    flag: '--repo-fetch-concurrency',
    default: 4,
    describe:
      'repo CARs downloaded and read at once (bounds their memory: this × RELAY_MAX_REPO_MB); more wait',
    parse: int(1, 256),
  }),
  repoWorkers: setting({
    env: 'RELAY_REPO_WORKERS',
    flag: '--repo-workers',
    default: 1,
    describe: 'worker threads reading fetched repo CARs (started on demand, stopped when idle)',
    parse: int(1, 64),
  }),
  repoWorkerNice: setting({
    env: 'RELAY_REPO_WORKER_NICE',
    flag: '--repo-worker-nice',
    default: 10,
    describe:
      'nice value (0–19) of the repo worker threads (Linux): repo downloads and reads take the CPU the event loop and validation leave',
    parse: int(0, 19),
  }),
  repoWorkerHeapMb: setting({
    env: 'RELAY_REPO_WORKER_HEAP_MB',
    flag: '--repo-worker-heap-mb',
    default: 256,
    describe: 'heap cap (MiB) of each repo worker thread; a repo that exhausts it fails, the relay goes on',
    parse: int(32, 65536),
  }),
  maxEventsGb: setting({
    env: 'RELAY_MAX_EVENTS_GB',
    flag: '--max-events-gb',
    default: 0,
    describe: 'event log size cap in GiB; oldest segments go first (0: only the retention hours apply)',
    parse: num(0, 1_000_000),
  }),
  eventLogFsync: setting({
    env: 'RELAY_EVENTLOG_FSYNC',
    flag: '--eventlog-fsync',
    default: true,
    describe:
      'make every event log group commit durable before it is acknowledged (an O_DSYNC write, or write + fdatasync where the platform has no O_DSYNC; turn off only for throwaway test relays)',
    parse: bool,
  }),
  identityTtlSeconds: setting({
    env: 'RELAY_IDENTITY_TTL_SECONDS',
    flag: '--identity-ttl-seconds',
    default: 3600,
    describe: 'how long a resolved DID document is used before it is fetched again',
    parse: int(1, 7 * 86_400),
  }),
  identityStaleSeconds: setting({
    env: 'RELAY_IDENTITY_STALE_SECONDS',
    flag: '--identity-stale-seconds',
    default: 86_400,
    describe:
      'after its TTL, how long an identity is still served (and refreshed in the background) while its refresh fails transiently, e.g. during a PLC outage (0: never)',
    parse: int(0, 30 * 86_400),
  }),
  identityRetryMaxSeconds: setting({
    env: 'RELAY_IDENTITY_RETRY_MAX_SECONDS',
    flag: '--identity-retry-max-seconds',
    default: 600,
    describe:
      "how long a repo's events wait, retrying, for a DID resolution that fails transiently (PLC down, 5xx, timeouts) before they are dropped",
    parse: int(0, 86_400),
  }),
  identityWebRetryMaxSeconds: setting({
    env: 'RELAY_IDENTITY_WEB_RETRY_MAX_SECONDS',
    flag: '--identity-web-retry-max-seconds',
    default: 60,
    describe:
      'the same for did:web documents (kept short: the host cursor cannot pass a waiting event, so one domain outage would hold its PDS)',
    parse: int(0, 86_400),
  }),
  eventLogMaxWriteFailureSeconds: setting({
    env: 'RELAY_EVENTLOG_MAX_WRITE_FAILURE_SECONDS',
    flag: '--eventlog-max-write-failure-seconds',
    default: 600,
    describe:
      'while event log writes fail (disk full, I/O error) ingest pauses and writes are retried; after this long the relay exits non-zero (0: retry for ever)',
    parse: int(0, 86_400),
  }),
  maxConsumers: setting({
    env: 'RELAY_MAX_CONSUMERS',
    flag: '--max-consumers',
    default: 1000,
    describe: 'firehose consumers allowed at once (and, counted apart, Jetstream /subscribe subscribers)',
    parse: int(1, 1_000_000),
  }),
  maxConsumersPerIp: setting({
    env: 'RELAY_MAX_CONSUMERS_PER_IP',
    flag: '--max-consumers-per-ip',
    default: 20,
    describe:
      'firehose consumers allowed per client network (IPv4 address or IPv6 /64); /subscribe subscribers counted apart',
    parse: int(1, 1_000_000),
  }),
  consumerOutboxMb: setting({
    env: 'RELAY_CONSUMER_OUTBOX_MB',
    flag: '--consumer-outbox-mb',
    default: 32,
    describe: 'bytes (MiB) a consumer may fall behind before it gets ConsumerTooSlow',
    parse: num(1, 65536),
  }),
  consumerOutboxEvents: setting({
    env: 'RELAY_CONSUMER_OUTBOX_EVENTS',
    flag: '--consumer-outbox-events',
    default: 50000,
    describe: 'events a consumer may fall behind before it gets ConsumerTooSlow',
    parse: int(100, 100_000_000),
  }),
  bootstrapHosts: setting({
    env: 'RELAY_BOOTSTRAP_HOSTS',
    flag: '--bootstrap-hosts',
    default: true,
    describe:
      "at start, add the hosts listed by the upstream relay's listHosts (same checks as requestCrawl); a failed bootstrap is retried with back-off until it succeeds, then repeated every RELAY_BOOTSTRAP_INTERVAL_MINUTES",
    parse: bool,
  }),
  bootstrapIntervalMinutes: setting({
    env: 'RELAY_BOOTSTRAP_INTERVAL_MINUTES',
    flag: '--bootstrap-interval-minutes',
    default: 360,
    describe:
      'how often the bootstrap from the upstream relay runs again after a success, to pick up new hosts (0: only until the first success)',
    parse: int(0, 7 * 24 * 60),
  }),
  bootstrapRetryMaxSeconds: setting({
    env: 'RELAY_BOOTSTRAP_RETRY_MAX_SECONDS',
    flag: '--bootstrap-retry-max-seconds',
    default: 600,
    describe:
      'longest wait between retries of a failed bootstrap (the wait starts at 5 s and doubles, with jitter)',
    parse: int(1, 24 * 3600),
  }),
  newHostsPerDay: setting({
    env: 'RELAY_NEW_HOSTS_PER_DAY',
    flag: '--new-hosts-per-day',
    default: 50,
    describe: 'hosts requestCrawl may add per 24 h (admin additions and bootstrap bypass it)',
    parse: int(0, 1_000_000),
  }),
  hostMaxFailures: setting({
    env: 'RELAY_HOST_MAX_FAILURES',
    flag: '--host-max-failures',
    default: 15,
    describe: 'consecutive connection failures before a host is marked offline',
    parse: int(1, 10_000),
  }),
  hostConnectsPerSecond: setting({
    env: 'RELAY_HOST_CONNECTS_PER_SECOND',
    flag: '--host-connects-per-second',
    default: 100,
    describe: 'how fast saved hosts are dialled at start (staggered so thousands do not connect at once)',
    parse: int(1, 100_000),
  }),
  hostSocketsOnWorkers: setting({
    env: 'RELAY_HOST_SOCKETS_ON_WORKERS',
    flag: '--host-sockets-on-workers',
    default: true,
    describe:
      'read host sockets on the validation worker threads, which also verify each commit there when they hold its key (every decision stays on the main thread; docs/ingest.md); off, or with RELAY_VALIDATION_WORKERS=0: on the main thread',
    parse: bool,
  }),
  hostMaxInFlight: setting({
    env: 'RELAY_HOST_MAX_IN_FLIGHT',
    flag: '--host-max-in-flight',
    default: 512,
    describe: "unfinished frames per host before ingest stops reading that host's socket",
    parse: int(1, 10_000),
  }),
  hostCursorWindow: setting({
    env: 'RELAY_HOST_CURSOR_WINDOW',
    flag: '--host-cursor-window',
    default: 8192,
    describe:
      "frames per host read past its saved cursor, finished or not, before ingest stops reading that host's socket: how far the host's other frames go on while one waits (a DID resolution, a resync) and holds the cursor",
    parse: int(1, 1_000_000),
  }),
  hostBadFramesPerMinute: setting({
    env: 'RELAY_HOST_BAD_FRAMES_PER_MINUTE',
    flag: '--host-bad-frames-per-minute',
    default: 20,
    describe:
      'bad frames (malformed, oversized, too deep, bad DID, unknown type, repeated #info, …) a host may send per minute; the one that empties this allowance disconnects it, and the reconnect backs off as a failure',
    parse: int(1, 1_000_000),
  }),
  coverageCurrentWithinSeconds: setting({
    env: 'RELAY_COVERAGE_CURRENT_WITHIN_SECONDS',
    flag: '--coverage-current-within-seconds',
    default: 900,
    describe:
      'a host counts as current (coverage, /_readyz) while it is connected, or was within this long, and no write sampled from its listRepos has been missing here for this long; a connected host silent this long whose sampled writes are missing is reconnected (stall watchdog)',
    parse: num(0.05, 7 * 24 * 3600),
  }),
  coverageSampleSeconds: setting({
    env: 'RELAY_COVERAGE_SAMPLE_SECONDS',
    flag: '--coverage-sample-seconds',
    default: 300,
    describe:
      "how often each active host is sampled with one listRepos page (its repos' revs against the heads stored here); 0 turns sampling and the stall watchdog off",
    parse: num(0, 7 * 24 * 3600),
  }),
  coverageSampleRepos: setting({
    env: 'RELAY_COVERAGE_SAMPLE_REPOS',
    flag: '--coverage-sample-repos',
    default: 200,
    describe: 'repos asked for in each host sample (one listRepos page)',
    parse: int(1, 1000),
  }),
  coverageReadyThreshold: setting({
    env: 'RELAY_COVERAGE_READY_THRESHOLD',
    flag: '--coverage-ready-threshold',
    default: 0.5,
    describe:
      '/_readyz answers 503 while coverage (share of carried hosts, i.e. active, idle or offline, that are current, weighted by accounts) is below this; 0 turns the check off',
    parse: num(0, 1),
  }),
  reconcileIntervalSeconds: setting({
    env: 'RELAY_RECONCILE_INTERVAL_SECONDS',
    flag: '--reconcile-interval-seconds',
    default: 600,
    describe:
      "account reconciliation: how often each active, connected host gets one sweep step (one listRepos page from where the last stopped, and a getRepoStatus re-check of drifts past their grace), comparing each account's status and rev with what the relay stores and repairing drift (#account emitted, resync queued); 0 turns it off",
    parse: num(0, 7 * 24 * 3600),
  }),
  reconcileAccountsPerHostPerHour: setting({
    env: 'RELAY_RECONCILE_ACCOUNTS_PER_HOST_PER_HOUR',
    flag: '--reconcile-accounts-per-host-per-hour',
    default: 2000,
    describe:
      'account reconciliation: accounts of one host examined (listed or re-checked) per hour at most, which bounds its requests and repairs',
    parse: int(1, 10_000_000),
  }),
  reconcileGraceSeconds: setting({
    env: 'RELAY_RECONCILE_GRACE_SECONDS',
    flag: '--reconcile-grace-seconds',
    default: 300,
    describe:
      'account reconciliation: how long a drift (status differs, host rev newer than the stored head) must last, re-checked with getRepoStatus, before it is repaired (the event may be in flight); 0 repairs at once',
    parse: num(0, 7 * 24 * 3600),
  }),
  hostReprobeBaseSeconds: setting({
    env: 'RELAY_HOST_REPROBE_BASE_SECONDS',
    flag: '--host-reprobe-base-seconds',
    default: 300,
    describe:
      'first re-probe of an offline or idle host (describeServer, then a subscription from its stored cursor); the delay doubles per failed probe up to the maximum, jittered',
    parse: num(0.05, 7 * 24 * 3600),
  }),
  hostReprobeMaxSeconds: setting({
    env: 'RELAY_HOST_REPROBE_MAX_SECONDS',
    flag: '--host-reprobe-max-seconds',
    default: 86_400,
    describe: 'longest delay between re-probes of an offline or idle host; 0 turns re-probing off',
    parse: num(0, 30 * 24 * 3600),
  }),
  ingestFrameBudgetMb: setting({
    env: 'RELAY_INGEST_FRAME_BUDGET_MB',
    flag: '--ingest-frame-budget-mb',
    default: 256,
    describe:
      'bytes (MiB) of upstream frames all hosts together may hold (queued or being validated) before every host socket pauses; one host may hold at most half, or an equal share when several hold frames',
    parse: int(1, 65536),
  }),
  hostRatePerSecond: setting({
    env: 'RELAY_HOST_RATE_PER_SECOND',
    flag: '--host-rate-per-second',
    default: 50,
    describe: 'per-host events/s baseline (plus accounts/1000; trusted hosts x100)',
    parse: int(1, 10_000_000),
  }),
  hostRatePerHour: setting({
    env: 'RELAY_HOST_RATE_PER_HOUR',
    flag: '--host-rate-per-hour',
    default: 2500,
    describe: 'per-host events/hour baseline (plus 1 per account; trusted hosts x100)',
    parse: int(1, 1_000_000_000),
  }),
  hostRatePerDay: setting({
    env: 'RELAY_HOST_RATE_PER_DAY',
    flag: '--host-rate-per-day',
    default: 20000,
    describe: 'per-host events/day baseline (plus 10 per account; trusted hosts x100)',
    parse: int(1, 1_000_000_000),
  }),
  trustedDomains: setting({
    env: 'RELAY_TRUSTED_DOMAINS',
    flag: '--trusted-domains',
    default: 'host.bsky.network',
    describe:
      'comma-separated domains (suffix match) whose hosts get higher rate limits and no account limit',
    parse: str,
  }),
  requestCrawlPerIpPerMinute: setting({
    env: 'RELAY_REQUEST_CRAWL_PER_IP_PER_MINUTE',
    flag: '--request-crawl-per-ip-per-minute',
    default: 10,
    describe:
      'public requestCrawl calls allowed per client network (IPv4 address or IPv6 /64) per minute (0: no limit)',
    parse: int(0, 1_000_000),
  }),
  collectionsCleanerIntervalSeconds: setting({
    env: 'RELAY_COLLECTIONS_CLEANER_INTERVAL_SECONDS',
    flag: '--collections-cleaner-interval-seconds',
    default: 60,
    describe:
      'how often the collection index cleaner settles undecided deletes and sweeps account states (0: never)',
    parse: int(0, 7 * 24 * 3600),
  }),
  collectionsKnownNsids: setting<string | undefined>({
    env: 'RELAY_COLLECTIONS_KNOWN_NSIDS',
    flag: '--collections-known-nsids',
    default: undefined,
    describe:
      'file path or http(s) URL listing known NSIDs, used by a relay-source collection backfill that names none',
    parse: optionalStr,
  }),
  logLevel: setting({
    env: 'RELAY_LOG_LEVEL',
    flag: '--log-level',
    default: 'info',
    describe:
      'pino log level (trace, debug, info, warn, error, fatal, silent), then optional per-module levels: "info,ingest=debug,firehose=warn" (modules: the `module` field of log lines)',
    parse: logLevel,
  }),
  logFormat: setting<LogFormat>({
    env: 'RELAY_LOG_FORMAT',
    flag: '--log-format',
    default: 'auto',
    describe:
      'log output: json (pino JSON lines), pretty (readable lines), auto (pretty on a terminal, JSON otherwise)',
    parse: logFormat,
  }),
  shutdownTimeoutMs: setting({
    env: 'RELAY_SHUTDOWN_TIMEOUT_MS',
    flag: '--shutdown-timeout-ms',
    default: 15000,
    describe: 'how long graceful shutdown may take before the process exits anyway',
    parse: int(0, 600000),
  }),
  // Scale-out (issue 17, docs/scale-out.md): shared log on JetStream, roles, host leases.
  eventLog: setting<EventLogBackend>({
    env: 'RELAY_EVENTLOG',
    flag: '--eventlog',
    default: 'file',
    describe:
      'event log backend: "file" (embedded, in the data directory) or "nats" (a JetStream stream shared by every process; needs RELAY_NATS_URL)',
    parse: eventLogBackend,
  }),
  natsUrl: setting<string | undefined>({
    env: 'RELAY_NATS_URL',
    flag: '--nats-url',
    default: undefined,
    describe: 'NATS server(s) for RELAY_EVENTLOG=nats, nats://host:port, comma-separated',
    parse: natsUrls,
  }),
  natsStream: setting({
    env: 'RELAY_NATS_STREAM',
    flag: '--nats-stream',
    default: 'atrelay',
    describe:
      'JetStream stream holding the event log (subject <stream>.events; takedowns in KV bucket <stream>-takedowns)',
    parse: natsStream,
  }),
  natsReplicas: setting({
    env: 'RELAY_NATS_REPLICAS',
    flag: '--nats-replicas',
    default: 1,
    describe:
      'replicas of the stream and the takedown bucket when they are created (1 for one NATS server, 3 for a cluster)',
    parse: int(1, 5),
  }),
  natsDuplicateWindowSeconds: setting({
    env: 'RELAY_NATS_DUPLICATE_WINDOW_SECONDS',
    flag: '--nats-duplicate-window-seconds',
    default: 300,
    describe:
      'how long JetStream remembers a message id: a re-published event inside it is stored once (must exceed the host lease time plus a restart)',
    parse: int(10, 86_400),
  }),
  role: setting<RelayRole>({
    env: 'RELAY_ROLE',
    flag: '--role',
    default: 'all',
    describe:
      '"all": one process does everything; "ingest": crawl, validate, publish (no firehose); "fanout": serve the firehose and read-only sync endpoints from the shared log and PostgreSQL (ingest/fanout need RELAY_EVENTLOG=nats and DATABASE_URL)',
    parse: relayRole,
  }),
  hostLeaseSeconds: setting({
    env: 'RELAY_HOST_LEASE_SECONDS',
    flag: '--host-lease-seconds',
    default: 15,
    describe:
      "with RELAY_ROLE=ingest: how long an ingest process owns a host without renewing; a dead process's hosts move after this",
    parse: int(2, 3600),
  }),
} as const;

type Settings = typeof SETTINGS;
export type RelayConfig = { [K in keyof Settings]: Settings[K]['default'] };
