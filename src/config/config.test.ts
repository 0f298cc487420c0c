import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, helpText, loadConfig } from './config.ts';
import { SETTINGS } from './settings.ts';

describe('config', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({ env: {}, argv: [] });
    assert.equal(c.port, 2470);
    assert.equal(c.metricsPort, 2471);
    assert.equal(c.dataDir, './data');
    assert.equal(c.databaseUrl, undefined);
    assert.equal(c.plcUrl, 'https://plc.directory');
    assert.equal(c.upstream, 'bsky.network');
    assert.equal(c.adminPassword, undefined);
    assert.equal(c.retentionHours, 72);
    assert.equal(c.allowInsecureHosts, false);
    assert.equal(c.lenientSync, false);
    // The public server on all interfaces, the metrics server on loopback; no proxy trusted.
    assert.equal(c.host, '0.0.0.0');
    assert.equal(c.metricsHost, '127.0.0.1');
    assert.equal(c.trustedProxies, undefined);
    assert.equal(c.httpHeadersTimeoutMs, 10_000);
    assert.equal(c.httpRequestTimeoutMs, 30_000);
    assert.equal(c.maxConnections, 4096);
    assert.equal(c.metricsMaxConnections, 64);
  });

  it('reads the HTTP hardening settings', () => {
    const c = loadConfig({
      env: { RELAY_TRUSTED_PROXIES: ' 10.0.0.0/8, 2001:db8::1 ', RELAY_METRICS_BIND: '127.0.0.2' },
      argv: ['--max-pending-upgrades', '7', '--http-max-headers=50'],
    });
    assert.equal(c.trustedProxies, '10.0.0.0/8, 2001:db8::1');
    assert.equal(c.metricsHost, '127.0.0.2');
    assert.equal(c.maxPendingUpgrades, 7);
    assert.equal(c.httpMaxHeaders, 50);
  });

  it('reads environment variables', () => {
    const c = loadConfig({
      env: {
        RELAY_PORT: '3000',
        RELAY_UPSTREAM: 'none',
        DATABASE_URL: 'postgres://u@127.0.0.1/db',
        RELAY_ALLOW_INSECURE_HOSTS: 'true',
        RELAY_ADMIN_PASSWORD: 's3cret',
      },
    });
    assert.equal(c.port, 3000);
    assert.equal(c.upstream, undefined);
    assert.equal(c.databaseUrl, 'postgres://u@127.0.0.1/db');
    assert.equal(c.allowInsecureHosts, true);
    assert.equal(c.adminPassword, 's3cret');
  });

  it('reads DNS servers: IPv4, IPv6, with or without a port; none by default', () => {
    assert.deepEqual(loadConfig({ env: {} }).dnsServers, []);
    const c = loadConfig({ env: { RELAY_DNS_SERVERS: ' 127.0.0.1:5353, ::1,[2001:db8::1]:53,10.0.0.2 ' } });
    assert.deepEqual(c.dnsServers, ['127.0.0.1:5353', '::1', '[2001:db8::1]:53', '10.0.0.2']);
  });

  it('lets flags override the environment', () => {
    const c = loadConfig({
      env: { RELAY_PORT: '3000' },
      argv: ['--port', '4000', '--lenient-sync', '--retention-hours=1.5'],
    });
    assert.equal(c.port, 4000);
    assert.equal(c.lenientSync, true);
    assert.equal(c.retentionHours, 1.5);
  });

  const bad: [Record<string, string>, string[], RegExp][] = [
    [{ RELAY_PORT: 'abc' }, [], /RELAY_PORT/],
    [{ RELAY_PORT: '70000' }, [], /RELAY_PORT/],
    [{ RELAY_METRICS_PORT: '2470' }, [], /RELAY_METRICS_PORT/],
    [{ RELAY_ALLOW_INSECURE_HOSTS: 'maybe' }, [], /RELAY_ALLOW_INSECURE_HOSTS/],
    [{ DATABASE_URL: 'mysql://x' }, [], /DATABASE_URL/],
    [{ RELAY_PLC_URL: 'ftp://plc' }, [], /RELAY_PLC_URL/],
    [{ RELAY_RETENTION_HOURS: '-1' }, [], /RELAY_RETENTION_HOURS/],
    [{ RELAY_LOG_LEVEL: 'loud' }, [], /RELAY_LOG_LEVEL/],
    [{ RELAY_LOG_LEVEL: 'info,ingest=loud' }, [], /RELAY_LOG_LEVEL.*ingest/],
    [{ RELAY_LOG_FORMAT: 'xml' }, [], /RELAY_LOG_FORMAT/],
    [{ RELAY_TRUSTED_PROXIES: '10.0.0.0/33' }, [], /RELAY_TRUSTED_PROXIES.*10\.0\.0\.0\/33/],
    [{ RELAY_TRUSTED_PROXIES: 'proxy.example' }, [], /RELAY_TRUSTED_PROXIES/],
    [
      { RELAY_HTTP_HEADERS_TIMEOUT_MS: '20000', RELAY_HTTP_REQUEST_TIMEOUT_MS: '10000' },
      [],
      /RELAY_HTTP_REQUEST_TIMEOUT_MS/,
    ],
    [{ RELAY_MAX_CONNECTIONS: '0' }, [], /RELAY_MAX_CONNECTIONS/],
    [{ RELAY_DNS_SERVERS: 'dns.example' }, [], /RELAY_DNS_SERVERS.*dns\.example/],
    [{ RELAY_DNS_SERVERS: '1.1.1.1:0' }, [], /RELAY_DNS_SERVERS/],
    [{ RELAY_DNS_SERVERS: '1.1.1.1, 300.1.1.1' }, [], /RELAY_DNS_SERVERS.*300/],
    [{ RELAY_DNS_SERVERS: '[1.1.1.1]:53' }, [], /RELAY_DNS_SERVERS/],
    [{ RELAY_HTTP_KEEP_ALIVE_TIMEOUT_MS: '0' }, [], /RELAY_HTTP_KEEP_ALIVE_TIMEOUT_MS/],
    [{}, ['--no-such-flag'], /--no-such-flag/],
    [{}, ['--port'], /--port/],
  ];
  for (const [env, argv, re] of bad) {
    it(`rejects ${JSON.stringify(env)} ${argv.join(' ')} naming the setting`, () => {
      assert.throws(
        () => loadConfig({ env, argv }),
        (err: unknown) => err instanceof ConfigError && re.test(err.message),
      );
    });
  }

  it('lists every setting in --help', () => {
    const text = helpText();
    for (const s of Object.values(SETTINGS)) {
      assert.ok(text.includes(s.env), s.env);
      assert.ok(text.includes(s.flag), s.flag);
    }
  });
});

describe('docs/configuration.md', () => {
  it('documents every setting', async () => {
    const { readFileSync } = await import('node:fs');
    const doc = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
    for (const s of Object.values(SETTINGS)) {
      assert.ok(doc.includes(`\`${s.env}\``), `${s.env} missing from docs/configuration.md`);
    }
  });
});

describe('scale-out settings', () => {
  it('name the setting when the shared log or store is missing', () => {
    assert.throws(() => loadConfig({ env: { RELAY_EVENTLOG: 'nats' } }), /RELAY_NATS_URL/);
    assert.throws(() => loadConfig({ env: { RELAY_EVENTLOG: 'kafka' } }), /RELAY_EVENTLOG/);
    assert.throws(() => loadConfig({ env: { RELAY_NATS_URL: 'http://x' } }), /RELAY_NATS_URL/);
    assert.throws(() => loadConfig({ env: { RELAY_ROLE: 'fanout' } }), /RELAY_ROLE.*RELAY_EVENTLOG=nats/);
    assert.throws(
      () =>
        loadConfig({
          env: { RELAY_ROLE: 'ingest', RELAY_EVENTLOG: 'nats', RELAY_NATS_URL: 'nats://n:4222' },
        }),
      /RELAY_ROLE.*DATABASE_URL/,
    );
    const cfg = loadConfig({
      env: {
        RELAY_ROLE: 'fanout',
        RELAY_EVENTLOG: 'nats',
        RELAY_NATS_URL: 'nats://a:4222,nats://b:4222',
        DATABASE_URL: 'postgres://p/db',
      },
    });
    assert.equal(cfg.role, 'fanout');
    assert.equal(cfg.natsStream, 'atrelay');
  });
});
