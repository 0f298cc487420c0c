// The dashboard in a real browser (playwright-core driving Debian's
// Chromium; test/support/chromium.ts finds or installs it, or the suite is
// skipped saying why) against a real Relay fed by the simulated network,
// all on loopback: a wrong password is refused; after logging in the
// Overview charts move while the simulated hosts send events; blocking a
// host in the Hosts table stops its events on a firehose consumer; taking
// down an account found by handle on the Accounts page puts its #account
// event on the consumer; the Consumers and Collections pages list what the
// relay has; the Hosts table stays one server page with 3,000 hosts. Each
// page is screenshotted under .artifacts/dashboard/ (git-ignored). Every
// wait is on a condition, with the suite's generous deadline.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { type StreamReader, subscribe } from '../../sim/consumer.ts';
import { SimNetwork } from '../../sim/network.ts';
import { CHROMIUM_ARGS, findChromium } from '../../test/support/chromium.ts';
import {
  crawlAll,
  startTestRelay,
  TEST_ADMIN_PASSWORD,
  waitRelayCaughtUp,
} from '../../test/support/relay-harness.ts';
import { tempDir } from '../../test/support/temp.ts';
import { WAIT_DEADLINE_MS, waitFor } from '../../test/support/wait.ts';
import type { Relay } from '../relay.ts';

const SCREENSHOTS = join(import.meta.dirname, '..', '..', '.artifacts', 'dashboard');
const chromium = findChromium();
const skip = 'skip' in chromium ? chromium.skip : false;
if (skip) console.log(`# dashboard browser tests skipped: ${skip}`);

interface Seen {
  seq: number;
  t: string;
  did: string;
  body: Record<string, unknown>;
}

function events(reader: StreamReader): Seen[] {
  return reader.frames.flatMap((f) => {
    const header = f.frame?.header;
    if (!f.frame || !header || header.op !== 1 || !('t' in header)) return [];
    const body = f.frame.body as Record<string, unknown>;
    return [{ seq: body.seq as number, t: header.t, did: (body.repo ?? body.did) as string, body }];
  });
}

describe('dashboard in a browser', { skip }, () => {
  let net: SimNetwork;
  let dataDir: string;
  let relay: Relay;
  let base: string;
  let browser: Browser;
  let page: Page;
  let consumer: StreamReader;
  /** What the next window.prompt() is answered. */
  let promptAnswer = '';

  let loads = 0;
  /** Loads the dashboard afresh on one tab (a new document, not a hash change). */
  const open = (tab: string) => page.goto(`${base}/admin/?load=${++loads}#${tab}`);
  // Polled from here: the dashboard's CSP (rightly) forbids the string eval
  // page.waitForFunction would need.
  const until = (what: string, cond: () => Promise<boolean>) => waitFor(cond, what, { intervalMs: 100 });
  const numberAttr = async (selector: string, attr: string) =>
    Number(await page.getAttribute(selector, attr));
  const rowCount = (selector: string) => page.locator(selector).count();
  const shot = (name: string) => page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });

  before(async () => {
    mkdirSync(SCREENSHOTS, { recursive: true });
    dataDir = tempDir('atrelay-dashboard-');
    net = await SimNetwork.start({ hosts: 2, accountsPerHost: 3, seed: 15 });
    relay = await startTestRelay(net, dataDir);
    base = `http://127.0.0.1:${relay.port}`;
    await crawlAll(relay, net);
    consumer = await subscribe(`ws://127.0.0.1:${relay.port}/xrpc/com.atproto.sync.subscribeRepos`);
    const { chromium: launcher } = await import('playwright-core');
    browser = await launcher.launch({
      executablePath: (chromium as { path: string }).path,
      headless: true,
      args: [...CHROMIUM_ARGS],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    page.setDefaultTimeout(WAIT_DEADLINE_MS);
    page.on('dialog', (d) => void (d.type() === 'prompt' ? d.accept(promptAnswer) : d.accept()));
  });

  after(async () => {
    net?.stopGenerator();
    await browser?.close();
    await consumer?.close();
    await relay?.stop();
    await net?.stop();
  });

  it('serves the plain page at /', async () => {
    await page.goto(`${base}/`);
    await page.getByText('This is an AT Protocol relay').waitFor();
    assert.match((await page.textContent('body')) ?? '', /subscribeRepos/);
    await shot('landing');
  });

  it('refuses a wrong password', async () => {
    await page.goto(`${base}/admin/`);
    await page.fill('#password', 'not the password');
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('#login-error:not([hidden])');
    assert.match((await page.textContent('#login-error')) ?? '', /wrong admin password/);
    const cookies = await page.context().cookies();
    assert.equal(cookies.length, 0, 'no session cookie after a failed login');
    await shot('login');
  });

  it('logs in with a session cookie and shows live charts while events flow', async () => {
    await page.fill('#password', TEST_ADMIN_PASSWORD);
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('#tabs');
    const [cookie] = await page.context().cookies();
    assert.equal(cookie.name, 'atrelay_admin');
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, 'Strict');
    assert.ok(cookie.expires > Date.now() / 1000, 'the cookie expires');

    net.startGenerator(40);
    // Charts move: the events-in chart shows a non-zero rate and keeps gaining points.
    await until('events in/s above zero', async () => (await numberAttr('#chart-eventsIn', 'data-last')) > 0);
    const pointsNow = await numberAttr('#chart-eventsIn', 'data-points');
    await until(
      'a new chart point',
      async () => (await numberAttr('#chart-eventsIn', 'data-points')) > pointsNow,
    );
    await until(
      'events out/s above zero',
      async () => (await numberAttr('#chart-eventsOut', 'data-last')) > 0,
    );
    // A few more points, so the screenshot shows lines rather than two dots.
    await until('six chart points', async () => (await numberAttr('#chart-eventsIn', 'data-points')) >= 6);
    assert.ok((await page.locator('#charts canvas').count()) >= 9, 'one uPlot canvas per chart');
    await shot('overview');
    net.stopGenerator();
    await waitRelayCaughtUp(relay, net, consumer);
  });

  it('blocks a host from the Hosts table, and its events stop', async () => {
    const blocked = net.hosts[0];
    const other = net.hosts[1];
    await open('hosts');
    await page.fill('#host-search', blocked.hostname);
    await until('the search applied', async () => (await rowCount('#host-table tbody tr')) === 1);
    await shot('hosts');
    await page.click(`button[data-action=block][data-host="${blocked.hostname}"]`);
    await page.waitForSelector(`tr[data-host="${blocked.hostname}"] td.status-blocked`);
    await waitFor(
      () => !(relay.hosts?.list() ?? []).some((h) => h.hostname === blocked.hostname && h.connected),
      'blocked host disconnected',
    );
    const mark = relay.eventLog?.head() ?? 0;
    const blockedDid = net.accounts.find((a) => a.host === 0)?.did as string;
    const otherDid = net.accounts.find((a) => a.host === 1)?.did as string;
    blocked.writeRecord(blockedDid);
    other.writeRecord(otherDid);
    await waitFor(
      () => events(consumer).some((e) => e.seq > mark && e.did === otherDid),
      'the other host still relayed',
    );
    await relay.validator?.whenIdle();
    assert.deepEqual(
      events(consumer).filter((e) => e.seq > mark && net.hostOf(e.did) === blocked),
      [],
      'no event from the blocked host after the block',
    );
    assert.equal((await relay.store?.getHostByHostname(blocked.hostname))?.status, 'blocked');
    // The API's refusal is shown: blocking an unknown host from the Add box is not possible,
    // but adding a malformed hostname is refused with the API's message.
    await page.fill('#host-add-name', 'not a hostname!');
    await page.click('#host-add');
    await page.waitForSelector('#flash.error');
    assert.match((await page.textContent('#flash')) ?? '', /InvalidRequest/);
  });

  it('sets rate limits, trusts, reconnects and bans a domain from the Hosts page', async () => {
    const host = net.hosts[1];
    const row = `tr[data-host="${host.hostname}"]`;
    await open('hosts');
    await page.fill('#host-search', host.hostname);
    await until('the search applied', async () => (await rowCount('#host-table tbody tr')) === 1);
    const live = () => (relay.hosts?.list() ?? []).find((h) => h.hostname === host.hostname);
    promptAnswer = '7,700,7000';
    await page.click(`button[data-action=limits][data-host="${host.hostname}"]`);
    await until('limits applied', async () => live()?.rateLimits.perSecond === 7);
    await page.waitForSelector(`${row} >> text=7/700/7000 (set)`);
    await page.click(`button[data-action=trust][data-host="${host.hostname}"]`);
    await until(
      'host trusted',
      async () => (await relay.store?.getHostByHostname(host.hostname))?.trusted === true,
    );
    await page.click(`button[data-action=reconnect][data-host="${host.hostname}"]`);
    await page.waitForSelector('#flash.ok');
    await until('host connected again', async () => live()?.connected === true);
    await page.fill('#domain-ban-name', 'spam.example');
    await page.click('#domain-ban');
    await until(
      'domain banned',
      async () => (await relay.store?.isDomainBanned('pds.spam.example')) === true,
    );
  });

  it('takes down an account looked up by handle, and the firehose says so', async () => {
    const did = net.accounts.find((a) => a.host === 1)?.did as string;
    const handle = net.hostOf(did).account(did).handle;
    await open('accounts');
    await page.fill('#account-query', handle);
    await page.click('#account-lookup');
    await page.waitForSelector('#account-takedown');
    assert.equal(await page.textContent('dd[data-field="DID"]'), did);
    promptAnswer = 'dashboard test';
    await page.click('#account-takedown');
    await waitFor(
      () =>
        events(consumer).some((e) => e.t === '#account' && e.did === did && e.body.status === 'takendown'),
      `#account takendown for ${did} on the consumer`,
    );
    await page.waitForSelector('#account-restore');
    assert.equal(await page.textContent('dd[data-field="Taken down"]'), 'yes');
    await shot('accounts');
  });

  it('lists consumers and the collection index', async () => {
    await open('consumers');
    await page.waitForSelector('tr[data-consumer]');
    assert.equal(await page.locator('tr[data-consumer]').count(), relay.firehose?.listConsumers().length);
    await shot('consumers');
    await open('collections');
    await page.waitForSelector('#backfill-state');
    assert.match((await page.textContent('#backfill-state')) ?? '', /Backfill: idle/);
    await until('collections listed', async () => (await rowCount('#collection-table tbody tr')) > 0);
    await shot('collections');
    // The API's refusal is shown: a backfill needs a source URL.
    await page.click('#backfill-start');
    await page.waitForSelector('#flash.error');
    assert.match((await page.textContent('#flash')) ?? '', /InvalidRequest/);
  });

  it('disconnects a consumer from the Consumers page', async () => {
    const extra = await subscribe(`ws://127.0.0.1:${relay.port}/xrpc/com.atproto.sync.subscribeRepos`);
    try {
      const newest = Math.max(...(relay.firehose?.listConsumers() ?? []).map((c) => c.id));
      await open('consumers');
      await page.click(`tr[data-consumer="${newest}"] button[data-action=disconnect]`);
      await extra.waitClosed(WAIT_DEADLINE_MS);
      await until('its row gone', async () => (await rowCount(`tr[data-consumer="${newest}"]`)) === 0);
      assert.equal(consumer.closed, false, 'the other consumer stays');
    } finally {
      await extra.close();
    }
  });

  it('keeps the Hosts page to one server page with 3,000 hosts', async () => {
    const store = relay.store;
    assert.ok(store);
    for (let i = 0; i < 3000; i++) await store.createHost({ hostname: `pds${i}.bulk.test` });
    const started = Date.now();
    const answer = page.waitForResponse((r) => r.url().includes('/admin/dashboard/api/hosts'));
    await open('hosts');
    const res = await answer;
    const bytes = (await res.body()).length;
    await until('3,002 hosts counted', async () =>
      /of 3002 hosts/.test((await page.textContent('#host-count')) ?? ''),
    );
    const ms = Date.now() - started;
    const rows = await page.locator('#host-table tbody tr').count();
    assert.equal(rows, 50, 'one page of rows in the DOM');
    assert.ok(bytes < 64 * 1024, `one page of JSON (${bytes} bytes)`);
    await page.click('th[data-sort="hostname"]'); // descending
    await page.waitForSelector('th.sorted[data-dir="desc"]');
    await page.fill('#host-search', 'pds2999.bulk');
    await until('one host found', async () => (await rowCount('#host-table tbody tr')) === 1);
    console.log(`3,000-host table: first page ${bytes} bytes of JSON, shown ${ms} ms after navigation`);
    await shot('hosts-3000');
  });
});
