// The dashboard's single page (served by the relay; no build step, no CDN).
// One <section> per tab, chosen by the URL's #hash. Data comes from the
// relay's JSON: /admin/dashboard/api/* (chart points computed on the server,
// the server-paged host table, handle resolution) and the admin API itself
// (the session cookie stands in for the password). Everything a peer can
// influence (hostnames, errors, user agents, DIDs) is put into the page with
// textContent, never as HTML. Every action asks for confirmation first and
// shows the API's error when it refuses.

// --- plumbing ---

class ApiError extends Error {}

async function api(path, opts = {}) {
  const res = await fetch(path, { credentials: 'same-origin', ...opts });
  const body = await res.json().catch(() => ({}));
  if (res.status === 401) {
    location.replace('/admin/');
    throw new ApiError('session ended');
  }
  if (!res.ok) throw new ApiError(`${body.error || res.status}: ${body.message || res.statusText}`);
  return body;
}

const post = (path, body = {}) =>
  api(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'onclick') node.addEventListener('click', v);
    else if (k === 'text') node.textContent = v;
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? '')));
  return node;
}

const flashBox = document.getElementById('flash');
function flash(message, isError = false) {
  flashBox.textContent = message;
  flashBox.className = isError ? 'error' : 'ok';
  flashBox.hidden = false;
}

/** Runs an operator action after a confirmation; shows its outcome or the API's refusal. */
async function act(question, run, done) {
  if (!window.confirm(question)) return;
  try {
    await run();
    flash(`done: ${question.replace(/\?$/, '')}`);
    if (done) await done();
  } catch (err) {
    flash(String(err.message || err), true);
  }
}

const fmt = (n) =>
  n === null || n === undefined
    ? '–'
    : Math.abs(n) >= 1e9
      ? `${(n / 1e9).toFixed(1)}G`
      : Math.abs(n) >= 1e6
        ? `${(n / 1e6).toFixed(1)}M`
        : Math.abs(n) >= 1e4
          ? `${(n / 1e3).toFixed(1)}k`
          : String(Math.round(n * 100) / 100);

// --- tabs ---

const TABS = ['overview', 'hosts', 'accounts', 'consumers', 'collections'];
let currentTab = '';
const loaders = {};

function showTab() {
  const want = location.hash.slice(1);
  currentTab = TABS.includes(want) ? want : 'overview';
  for (const t of TABS) document.getElementById(t).hidden = t !== currentTab;
  for (const a of document.querySelectorAll('#tabs a'))
    a.classList.toggle('active', a.dataset.tab === currentTab);
  loaders[currentTab]?.();
}
window.addEventListener('hashchange', showTab);

document.getElementById('logout').addEventListener('click', async () => {
  await post('/admin/logout').catch(() => {});
  location.replace('/admin/');
});

/** Calls `fn` every `ms` while `tab` is shown (and once when it is shown). */
function every(tab, ms, fn) {
  const prev = loaders[tab];
  loaders[tab] = () => {
    prev?.();
    fn();
  };
  setInterval(() => {
    if (currentTab === tab && !document.hidden) fn();
  }, ms);
}

// --- overview ---

const MAX_POINTS = 300;
let points = [];
let since = 0;
const PALETTE = [
  '#2563eb',
  '#dc2626',
  '#16a34a',
  '#d97706',
  '#7c3aed',
  '#0891b2',
  '#db2777',
  '#65a30d',
  '#525252',
];

const sumOf = (rec) => Object.values(rec || {}).reduce((a, b) => a + b, 0);
const keyed = (field) => (pts) => {
  const keys = [...new Set(pts.flatMap((p) => Object.keys(p[field] || {})))].sort();
  return keys.map((k) => ({ label: k, values: pts.map((p) => p[field]?.[k] ?? 0) }));
};
const plain = (label, f) => (pts) => [{ label, values: pts.map(f) }];

const CHARTS = [
  { id: 'eventsIn', title: 'Events in /s (from hosts, by type)', series: keyed('eventsIn') },
  {
    id: 'eventsOut',
    title: 'Events out /s (published by type; sent to all consumers)',
    series: (pts) => [...keyed('eventsOut')(pts), { label: 'sent', values: pts.map((p) => p.eventsSent) }],
  },
  { id: 'drops', title: 'Drops /s by reason', series: keyed('drops') },
  {
    id: 'latency',
    title: 'Validation latency (ms, ingest to durable)',
    series: (pts) => [
      { label: 'p50', values: pts.map((p) => p.latencyP50Ms) },
      { label: 'p99', values: pts.map((p) => p.latencyP99Ms) },
    ],
  },
  { id: 'consumers', title: 'Consumers connected', series: plain('consumers', (p) => p.consumers) },
  {
    id: 'eventLogBytes',
    title: 'Event log size (MB)',
    series: plain('MB', (p) => p.eventLogBytes / 1048576),
  },
  {
    id: 'eventLogSeq',
    title: 'Event log seq (oldest, head)',
    series: (pts) => [
      { label: 'oldest', values: pts.map((p) => p.eventLogOldestSeq) },
      { label: 'head', values: pts.map((p) => p.eventLogHeadSeq) },
    ],
  },
  { id: 'identity', title: 'Identity cache hit rate', series: plain('hit rate', (p) => p.identityHitRate) },
  { id: 'resync', title: 'Resync queue', series: plain('queued', (p) => p.resyncQueue) },
];
const plots = new Map();

function drawChart(def) {
  const container = document.getElementById(`chart-${def.id}`) ?? makeChartBox(def);
  const series = def.series(points);
  const data = [points.map((p) => p.t / 1000), ...series.map((s) => s.values)];
  const labels = series.map((s) => s.label).join('|');
  const last = series.reduce((sum, s) => sum + (s.values.at(-1) ?? 0), 0);
  container.dataset.points = String(points.length);
  container.dataset.last = String(last);
  container.querySelector('.last').textContent = series.length
    ? series.map((s) => `${s.label} ${fmt(s.values.at(-1))}`).join(' · ')
    : 'no data yet';
  const existing = plots.get(def.id);
  if (existing && existing.labels === labels) {
    existing.plot.setData(data);
    return;
  }
  existing?.plot.destroy();
  const width = Math.max(280, container.clientWidth - 16);
  const plot = new uPlot(
    {
      width,
      height: 170,
      legend: { show: series.length > 1 },
      scales: { x: { time: true } },
      axes: [{}, { size: 56 }],
      series: [
        {},
        ...series.map((s, i) => ({
          label: s.label,
          stroke: PALETTE[i % PALETTE.length],
          width: 1.5,
          spanGaps: true,
        })),
      ],
    },
    data,
    container.querySelector('.plot'),
  );
  plots.set(def.id, { plot, labels });
}

function makeChartBox(def) {
  const box = el(
    'div',
    { class: 'chart', id: `chart-${def.id}` },
    el('h3', { text: def.title }),
    el('p', { class: 'last' }),
    el('div', { class: 'plot' }),
  );
  document.getElementById('charts').append(box);
  return box;
}

async function pollOverview() {
  try {
    const r = await api(`/admin/dashboard/api/overview?since=${since}`);
    if (r.points.length > 0) {
      points = points.concat(r.points).slice(-MAX_POINTS);
      since = points.at(-1).t;
    }
    for (const def of CHARTS) drawChart(def);
    const p = points.at(-1);
    document.getElementById('overview-summary').textContent = p
      ? `in ${fmt(sumOf(p.eventsIn))}/s · out ${fmt(sumOf(p.eventsOut))}/s · sent ${fmt(p.eventsSent)}/s · ` +
        `drops ${fmt(sumOf(p.drops))}/s · consumers ${p.consumers} · log head ${p.eventLogHeadSeq}`
      : 'collecting the first samples…';
  } catch (err) {
    flash(String(err.message || err), true);
  }
}
every('overview', 2000, pollOverview);

// --- hosts ---

const hostState = { q: '', sort: 'hostname', dir: 'asc', offset: 0, limit: 50, matched: 0 };

async function loadHosts(fresh = false) {
  const params = new URLSearchParams({
    q: hostState.q,
    sort: hostState.sort,
    dir: hostState.dir,
    offset: String(hostState.offset),
    limit: String(hostState.limit),
    ...(fresh ? { fresh: '1' } : {}),
  });
  let page;
  try {
    page = await api(`/admin/dashboard/api/hosts?${params}`);
  } catch (err) {
    flash(String(err.message || err), true);
    return;
  }
  hostState.matched = page.matched;
  const end = Math.min(page.offset + page.rows.length, page.matched);
  document.getElementById('host-count').textContent =
    `${page.matched ? page.offset + 1 : 0}–${end} of ${page.matched}` +
    (page.matched !== page.total ? ` (${page.total} hosts)` : ' hosts') +
    (page.truncated ? ' (list truncated)' : '');
  const body = document.querySelector('#host-table tbody');
  body.replaceChildren(...page.rows.map(hostRow));
  for (const th of document.querySelectorAll('#host-table th[data-sort]')) {
    th.classList.toggle('sorted', th.dataset.sort === hostState.sort);
    th.dataset.dir = th.dataset.sort === hostState.sort ? hostState.dir : '';
  }
}

function hostRow(h) {
  const limits = h.rateLimits
    ? `${h.rateLimits.perSecond ?? '–'}/${h.rateLimits.perHour ?? '–'}/${h.rateLimits.perDay ?? '–'}`
    : '–';
  const refresh = () => loadHosts(true);
  const button = (action, label, question, run) =>
    el(
      'button',
      {
        type: 'button',
        'data-action': action,
        'data-host': h.hostname,
        onclick: () => act(question, run, refresh),
      },
      label,
    );
  const blocked = h.status === 'blocked' || h.status === 'banned';
  return el(
    'tr',
    { 'data-host': h.hostname },
    el('td', { text: h.hostname, title: h.trusted ? 'trusted' : '' }, h.trusted ? ' ★' : ''),
    el('td', {
      class: `status-${h.status}`,
      text: `${h.status}${h.connected ? '' : h.state ? ` (${h.state})` : ''}`,
    }),
    el('td', { text: `${h.accountCount}${h.accountLimit ? ` / ${h.accountLimit}` : ''}` }),
    el('td', { text: fmt(h.rate) }),
    el('td', { text: limits + (h.rateLimitOverride ? ' (set)' : '') }),
    el('td', {
      text: `${h.cursor}${h.liveCursor !== null && h.liveCursor !== h.cursor ? ` → ${h.liveCursor}` : ''}`,
    }),
    el('td', { text: String(h.backlog) }),
    el('td', { text: String(h.failures) }),
    el('td', { class: 'error-text', text: h.lastError ?? '' }),
    el(
      'td',
      { class: 'actions' },
      blocked
        ? button('unblock', 'Unblock', `Unblock ${h.hostname}?`, () =>
            post('/admin/hosts/unblock', { hostname: h.hostname }),
          )
        : button('block', 'Block', `Block ${h.hostname}? Its events stop at once.`, () =>
            post('/admin/hosts/block', { hostname: h.hostname }),
          ),
      button('reconnect', 'Reconnect', `Reconnect to ${h.hostname}?`, () =>
        post('/admin/hosts/reconnect', { hostname: h.hostname }),
      ),
      button(
        'trust',
        h.trusted ? 'Untrust' : 'Trust',
        `${h.trusted ? 'Stop trusting' : 'Trust'} ${h.hostname}?`,
        () => post('/admin/hosts/trusted', { hostname: h.hostname, trusted: !h.trusted }),
      ),
      el(
        'button',
        { type: 'button', 'data-action': 'limits', 'data-host': h.hostname, onclick: () => setLimits(h) },
        'Limits',
      ),
      el(
        'button',
        {
          type: 'button',
          'data-action': 'reset-cursor',
          'data-host': h.hostname,
          onclick: () => resetCursor(h),
        },
        'Reset cursor',
      ),
    ),
  );
}

function setLimits(h) {
  const cur = h.rateLimits
    ? `${h.rateLimits.perSecond ?? 0},${h.rateLimits.perHour ?? 0},${h.rateLimits.perDay ?? 0}`
    : '';
  const answer = window.prompt(
    `Rate limits of ${h.hostname} as perSecond,perHour,perDay (0: back to the default)`,
    cur,
  );
  if (answer === null) return;
  const [perSecond, perHour, perDay] = answer
    .split(',')
    .map((s) => (s.trim() === '' ? undefined : Number(s.trim())));
  const body = { hostname: h.hostname, perSecond, perHour, perDay };
  act(
    `Set the rate limits of ${h.hostname} to ${answer}?`,
    () => post('/admin/hosts/rate-limits', body),
    () => loadHosts(true),
  );
}

function resetCursor(h) {
  const answer = window.prompt(`New cursor for ${h.hostname} (empty: live, no cursor)`, '');
  if (answer === null) return;
  const cursor = answer.trim() === '' ? null : Number(answer.trim());
  act(
    `Reset the cursor of ${h.hostname} to ${cursor ?? 'live'}?`,
    () => post('/admin/hosts/reset-cursor', { hostname: h.hostname, cursor }),
    () => loadHosts(true),
  );
}

let searchTimer;
document.getElementById('host-search').addEventListener('input', (ev) => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => {
    hostState.q = ev.target.value;
    hostState.offset = 0;
    loadHosts();
  }, 250);
});
for (const th of document.querySelectorAll('#host-table th[data-sort]')) {
  th.addEventListener('click', () => {
    hostState.dir = hostState.sort === th.dataset.sort && hostState.dir === 'asc' ? 'desc' : 'asc';
    hostState.sort = th.dataset.sort;
    hostState.offset = 0;
    loadHosts();
  });
}
document.getElementById('host-prev').addEventListener('click', () => {
  hostState.offset = Math.max(0, hostState.offset - hostState.limit);
  loadHosts();
});
document.getElementById('host-next').addEventListener('click', () => {
  if (hostState.offset + hostState.limit < hostState.matched) hostState.offset += hostState.limit;
  loadHosts();
});
document.getElementById('host-add').addEventListener('click', () => {
  const hostname = document.getElementById('host-add-name').value.trim();
  if (hostname)
    act(
      `Add host ${hostname}?`,
      () => post('/admin/hosts/add', { hostname }),
      () => loadHosts(true),
    );
});
document.getElementById('domain-ban').addEventListener('click', () => {
  const domain = document.getElementById('domain-ban-name').value.trim();
  if (domain)
    act(
      `Ban the domain ${domain} and every host under it?`,
      () => post('/admin/domains/ban', { domain }),
      () => loadHosts(true),
    );
});
every('hosts', 5000, () => loadHosts());

// --- accounts ---

async function lookupAccount() {
  const q = document.getElementById('account-query').value.trim();
  const out = document.getElementById('account-result');
  if (!q) return;
  try {
    const did = q.startsWith('did:')
      ? q
      : (await api(`/admin/dashboard/api/resolve-handle?handle=${encodeURIComponent(q)}`)).did;
    const a = await api(`/admin/repos/get?did=${encodeURIComponent(did)}`);
    const rows = [
      ['DID', a.did],
      ['Status', a.status ?? (a.takenDown ? 'takendown' : '–')],
      ['Host', a.hostname ?? '–'],
      ['Head rev', a.head?.rev ?? '–'],
      ['Taken down', a.takenDown ? 'yes' : 'no'],
      ['Throttled', a.status === 'throttled' || a.localStatus === 'throttled' ? 'yes' : 'no'],
      ['Upstream status', a.upstreamStatus ?? '–'],
    ];
    const again = () => lookupAccount();
    out.replaceChildren(
      el(
        'dl',
        { id: 'account-fields' },
        ...rows.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: String(v), 'data-field': k })]),
      ),
      a.takenDown
        ? el(
            'button',
            {
              type: 'button',
              id: 'account-restore',
              onclick: () =>
                act(`Restore ${a.did}?`, () => post('/admin/repos/reverse-takedown', { did: a.did }), again),
            },
            'Restore',
          )
        : el(
            'button',
            {
              type: 'button',
              id: 'account-takedown',
              onclick: () => {
                const reason = window.prompt(`Reason for taking down ${a.did} (optional)`, '');
                if (reason === null) return;
                act(
                  `Take down ${a.did}?`,
                  () => post('/admin/repos/takedown', reason ? { did: a.did, reason } : { did: a.did }),
                  again,
                );
              },
            },
            'Take down',
          ),
    );
  } catch (err) {
    out.replaceChildren(el('p', { class: 'error', text: String(err.message || err) }));
  }
}
document.getElementById('account-lookup').addEventListener('click', lookupAccount);
document
  .getElementById('account-query')
  .addEventListener('keydown', (ev) => ev.key === 'Enter' && lookupAccount());
document.getElementById('throttled-list').addEventListener('click', async () => {
  const hostname = document.getElementById('throttled-host').value.trim();
  const out = document.getElementById('throttled-result');
  try {
    const r = await api(`/admin/hosts/throttled?hostname=${encodeURIComponent(hostname)}&limit=200`);
    out.replaceChildren(
      r.accounts.length === 0
        ? el('p', { text: `no throttled accounts on ${r.hostname}` })
        : el('ul', {}, ...r.accounts.map((a) => el('li', { text: `${a.did} (${a.status})` }))),
    );
  } catch (err) {
    out.replaceChildren(el('p', { class: 'error', text: String(err.message || err) }));
  }
});

// --- consumers ---

async function loadConsumers() {
  try {
    const { consumers } = await api('/admin/consumers');
    const body = document.querySelector('#consumer-table tbody');
    body.replaceChildren(
      ...consumers.map((c) =>
        el(
          'tr',
          { 'data-consumer': c.id },
          el('td', { text: String(c.id) }),
          el('td', { text: c.remoteAddress }),
          el('td', { text: c.userAgent ?? '' }),
          el('td', { text: c.state }),
          el('td', { text: c.cursor ?? 'live' }),
          el('td', { text: String(c.lastSeq) }),
          el('td', { text: String(c.lag) }),
          el('td', { text: `${fmt(c.outboxBytes)} B` }),
          el('td', { text: `${fmt(c.eventsSent)} ev` }),
          el(
            'td',
            {},
            el(
              'button',
              {
                type: 'button',
                'data-action': 'disconnect',
                onclick: () =>
                  act(
                    `Disconnect consumer ${c.id} (${c.remoteAddress})?`,
                    () => post('/admin/consumers/disconnect', { id: c.id }),
                    loadConsumers,
                  ),
              },
              'Disconnect',
            ),
          ),
        ),
      ),
    );
    if (consumers.length === 0)
      body.append(el('tr', {}, el('td', { colspan: 10, text: 'no consumers connected' })));
  } catch (err) {
    flash(String(err.message || err), true);
  }
}
every('consumers', 3000, loadConsumers);

// --- collections ---

async function loadCollections() {
  try {
    const [list, backfill] = await Promise.all([
      api('/admin/collections?limit=200'),
      api('/admin/collections/backfill'),
    ]);
    document.getElementById('collections-summary').textContent =
      `${fmt(list.totalPairs)} (account, collection) pairs · ${fmt(list.pendingChecks)} checks pending` +
      (list.cursor ? ' · first 200 collections shown' : '');
    document
      .querySelector('#collection-table tbody')
      .replaceChildren(
        ...list.collections.map((c) =>
          el('tr', {}, el('td', { text: c.collection }), el('td', { text: fmt(c.count) })),
        ),
      );
    const pct = backfill.itemsTotal ? Math.round((100 * backfill.itemsDone) / backfill.itemsTotal) : 0;
    const eta = backfill.etaSeconds === null ? '–' : `${Math.round(backfill.etaSeconds / 60)} min`;
    document.getElementById('backfill-status').replaceChildren(
      el('p', {
        id: 'backfill-state',
        text: `Backfill: ${backfill.state}${backfill.job ? ` (${backfill.job})` : ''}`,
      }),
      el('progress', { max: 100, value: pct }),
      el('p', {
        text: `${backfill.itemsDone}/${backfill.itemsTotal} items (${pct}%) · ${fmt(backfill.pairsImported)} pairs · ${backfill.pairsPerSec}/s · ETA ${eta} · ${backfill.errors} errors${backfill.lastError ? ` · last: ${backfill.lastError}` : ''}`,
      }),
    );
  } catch (err) {
    flash(String(err.message || err), true);
  }
}
document.getElementById('backfill-start').addEventListener('click', () => {
  const url = document.getElementById('backfill-url').value.trim();
  act(
    `Start a collection backfill from ${url || '(no URL)'}?`,
    () => post('/admin/collections/backfill', { kind: 'relay', url }),
    loadCollections,
  );
});
document
  .getElementById('backfill-stop')
  .addEventListener('click', () =>
    act('Stop the running backfill?', () => post('/admin/collections/backfill/stop'), loadCollections),
  );
every('collections', 5000, loadCollections);

showTab();
