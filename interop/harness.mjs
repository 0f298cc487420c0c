// The upstream side of the interop tests, run under Node 22: a PLC directory
// and N reference PDS instances from @atproto/dev-env (TestPlc + TestPds, the
// same pieces TestNetworkNoAppView is built from, with an in-memory PLC and
// SQLite PDS stores in a temp folder), all on loopback (loopback-guard.mjs).
//
// A test under the machine's Node drives it as a child process:
//   node harness.mjs [--pds N]          (default 2)
// stdout, first line: {"type":"ready","plc":URL,"pds":[URL,...],"hosts":["localhost:PORT",...]}
// then one reply per command read from stdin (JSON lines):
//   {"id":1,"cmd":"createAccount","pds":0,"handle":"alice.test"}
//   -> {"id":1,"ok":true,"result":{...}} or {"id":1,"ok":false,"error":"..."}
// Every write answers with what the PDS sequenced for it: the account's DID,
// the commit CID and rev, the ops (action, path, CID) and the PDS's seq, so
// the test knows exactly which events the PDS firehose carries. The commands
// are listed in COMMANDS below; `shutdown` (or stdin closing, or SIGTERM)
// stops every server and exits. Logs go to stderr.
import './loopback-guard.mjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { AtpAgent } from '@atproto/api';

// dev-env makes temp folders (and a port-lock folder at load time) under
// os.tmpdir(): point that at a folder of our own, removed on exit.
const scratch = mkdtempSync(join(tmpdir(), 'atrelay-interop-'));
process.env.TMPDIR = scratch;
const { mockNetworkUtilities, TestPds, TestPlc } = await import('@atproto/dev-env');

const args = process.argv.slice(2);
const pdsCount = Number(args[args.indexOf('--pds') + 1] || 2) || 2;

const tempDirs = [scratch];
const plc = await TestPlc.create({});
const pdses = [];
for (let i = 0; i < pdsCount; i++) {
  const dataDirectory = mkdtempSync(join(scratch, 'pds-'));
  const pds = await TestPds.create({
    didPlcUrl: plc.url,
    dataDirectory,
    blobstoreDiskLocation: join(dataDirectory, 'blobs'),
  });
  mockNetworkUtilities(pds);
  pdses.push(pds);
}

/** did -> { pds: index, handle, password, email, agent } */
const accounts = new Map();
let accountCounter = 0;

function pdsAt(i) {
  const pds = pdses[i ?? 0];
  if (!pds) throw new Error(`no PDS ${i}`);
  return pds;
}

function account(did) {
  const acct = accounts.get(did);
  if (!acct) throw new Error(`unknown account ${did}`);
  return acct;
}

function hostOf(pds) {
  return new URL(pds.url).host;
}

async function seqOf(pds) {
  return (await pds.ctx.sequencer.curr()) ?? 0;
}

// What a PDS sequenced after seq `after` (its firehose, as summaries).
async function eventsAfter(pds, after, limit = 10000) {
  const evts = await pds.ctx.sequencer.requestSeqRange({ earliestSeq: after, limit });
  return evts.map(summarize);
}

function summarize({ seq, type, evt }) {
  const base = { seq, type, did: evt.repo ?? evt.did };
  if (type === 'commit') {
    return {
      ...base,
      commit: evt.commit.toString(),
      rev: evt.rev,
      since: evt.since ?? null,
      ops: evt.ops.map((op) => ({
        action: op.action,
        path: op.path,
        cid: op.cid ? op.cid.toString() : null,
      })),
    };
  }
  if (type === 'sync') return { ...base, rev: evt.rev };
  if (type === 'identity') return { ...base, handle: evt.handle ?? null };
  if (type === 'account') return { ...base, active: evt.active, status: evt.status ?? null };
  return base;
}

// The commit a write produced, read back from the PDS's own firehose storage:
// the newest commit event for the DID, with its seq and ops.
async function lastCommit(pds, did) {
  const rows = await pds.ctx.sequencer.db.db
    .selectFrom('repo_seq')
    .selectAll()
    .where('did', '=', did)
    .where('eventType', '=', 'append')
    .orderBy('seq', 'desc')
    .limit(1)
    .execute();
  const row = rows[0];
  if (!row) throw new Error(`no commit sequenced for ${did}`);
  const { cborDecode } = await import('@atproto/lex-cbor');
  const evt = cborDecode(row.event);
  return {
    seq: row.seq,
    commit: evt.commit.toString(),
    rev: evt.rev,
    ops: evt.ops.map((op) => ({ action: op.action, path: op.path, cid: op.cid ? op.cid.toString() : null })),
  };
}

async function writeResult(did, extra = {}) {
  const acct = account(did);
  const pds = pdsAt(acct.pds);
  return { did, ...extra, ...(await lastCommit(pds, did)) };
}

const now = () => new Date().toISOString();

const COMMANDS = {
  async info() {
    return {
      plc: plc.url,
      pds: pdses.map((p) => p.url),
      hosts: pdses.map(hostOf),
      seqs: await Promise.all(pdses.map(seqOf)),
    };
  },

  async createAccount({ pds: index = 0, handle, password = 'interop-pass', email }) {
    const pds = pdsAt(index);
    accountCounter++;
    const h = handle ?? `user${accountCounter}-${Date.now().toString(36)}.test`;
    const agent = new AtpAgent({ service: pds.url });
    const res = await agent.createAccount({ handle: h, password, email: email ?? `${h}@interop.test` });
    const did = res.data.did;
    accounts.set(did, { pds: index, handle: h, password, email: email ?? `${h}@interop.test`, agent });
    return { did, handle: h, pds: index, seq: await seqOf(pds), commit: await lastCommit(pds, did) };
  },

  async createRecord({ did, collection, record, rkey }) {
    const { agent } = account(did);
    const res = await agent.com.atproto.repo.createRecord({ repo: did, collection, record, rkey });
    return writeResult(did, { uri: res.data.uri, cid: res.data.cid });
  },

  async post({ did, text }) {
    return COMMANDS.createRecord({
      did,
      collection: 'app.bsky.feed.post',
      record: {
        $type: 'app.bsky.feed.post',
        text: text ?? 'hello from the interop harness',
        createdAt: now(),
      },
    });
  },

  async like({ did, uri, cid }) {
    return COMMANDS.createRecord({
      did,
      collection: 'app.bsky.feed.like',
      record: { $type: 'app.bsky.feed.like', subject: { uri, cid }, createdAt: now() },
    });
  },

  async follow({ did, subject }) {
    return COMMANDS.createRecord({
      did,
      collection: 'app.bsky.graph.follow',
      record: { $type: 'app.bsky.graph.follow', subject, createdAt: now() },
    });
  },

  async putRecord({ did, collection, rkey, record }) {
    const { agent } = account(did);
    const res = await agent.com.atproto.repo.putRecord({ repo: did, collection, rkey, record });
    return writeResult(did, { uri: res.data.uri, cid: res.data.cid });
  },

  async deleteRecord({ did, collection, rkey }) {
    const { agent } = account(did);
    await agent.com.atproto.repo.deleteRecord({ repo: did, collection, rkey });
    return writeResult(did);
  },

  // `count` new posts in one applyWrites call: one commit, `count` create ops.
  async batch({ did, count = 200, text = 'batch' }) {
    const { agent } = account(did);
    const writes = [];
    for (let i = 0; i < count; i++) {
      writes.push({
        $type: 'com.atproto.repo.applyWrites#create',
        collection: 'app.bsky.feed.post',
        value: { $type: 'app.bsky.feed.post', text: `${text} ${i}`, createdAt: now() },
      });
    }
    await agent.com.atproto.repo.applyWrites({ repo: did, writes });
    return writeResult(did);
  },

  async updateHandle({ did, handle }) {
    const acct = account(did);
    await acct.agent.com.atproto.identity.updateHandle({ handle });
    acct.handle = handle;
    return { did, handle, seq: await seqOf(pdsAt(acct.pds)) };
  },

  async deactivate({ did }) {
    const acct = account(did);
    await acct.agent.com.atproto.server.deactivateAccount({});
    return { did, seq: await seqOf(pdsAt(acct.pds)) };
  },

  async activate({ did }) {
    const acct = account(did);
    await acct.agent.com.atproto.server.activateAccount();
    return { did, seq: await seqOf(pdsAt(acct.pds)) };
  },

  async deleteAccount({ did }) {
    const acct = account(did);
    const pds = pdsAt(acct.pds);
    const admin = new AtpAgent({ service: pds.url });
    await admin.com.atproto.admin.deleteAccount({ did }, { headers: pds.adminAuthHeaders() });
    acct.deleted = true;
    return { did, seq: await seqOf(pds) };
  },

  // The standard account migration (as in the PDS's own account-migration
  // test): service-auth'd createAccount on the new PDS, repo import, PLC
  // operation signed by the old PDS and submitted by the new, activate on the
  // new PDS, deactivate on the old.
  async migrate({ did, to }) {
    const acct = account(did);
    const oldPds = pdsAt(acct.pds);
    const newPds = pdsAt(to);
    if (oldPds === newPds) throw new Error('migrate: same PDS');
    const oldAgent = acct.agent;
    const newAgent = new AtpAgent({ service: newPds.url });
    const serverDid = (await newAgent.com.atproto.server.describeServer()).data.did;
    const jwt = (
      await oldAgent.com.atproto.server.getServiceAuth({
        aud: serverDid,
        lxm: 'com.atproto.server.createAccount',
      })
    ).data.token;
    await newAgent.com.atproto.server.createAccount(
      { handle: acct.handle, email: acct.email, password: acct.password, did },
      { headers: { authorization: `Bearer ${jwt}` }, encoding: 'application/json' },
    );
    await newAgent.login({ identifier: did, password: acct.password });
    const repo = await oldAgent.com.atproto.sync.getRepo({ did });
    await newAgent.com.atproto.repo.importRepo(repo.data, { encoding: 'application/vnd.ipld.car' });
    const creds = await newAgent.com.atproto.identity.getRecommendedDidCredentials();
    await oldAgent.com.atproto.identity.requestPlcOperationSignature();
    const tokenRow = await oldPds.ctx.accountManager.db.db
      .selectFrom('email_token')
      .selectAll()
      .where('did', '=', did)
      .where('purpose', '=', 'plc_operation')
      .executeTakeFirst();
    if (!tokenRow) throw new Error('migrate: no PLC operation token');
    const op = await oldAgent.com.atproto.identity.signPlcOperation({ token: tokenRow.token, ...creds.data });
    await newAgent.com.atproto.identity.submitPlcOperation({ operation: op.data.operation });
    await newAgent.com.atproto.server.activateAccount();
    await oldAgent.com.atproto.server.deactivateAccount({});
    acct.pds = to;
    acct.agent = newAgent;
    return {
      did,
      from: pdses.indexOf(oldPds),
      to,
      oldSeq: await seqOf(oldPds),
      newSeq: await seqOf(newPds),
      head: (await newAgent.com.atproto.sync.getLatestCommit({ did })).data,
    };
  },

  async takedown({ did, applied = true }) {
    const acct = account(did);
    const pds = pdsAt(acct.pds);
    const admin = new AtpAgent({ service: pds.url });
    await admin.com.atproto.admin.updateSubjectStatus(
      { subject: { $type: 'com.atproto.admin.defs#repoRef', did }, takedown: { applied, ref: 'interop' } },
      { headers: pds.adminAuthHeaders(), encoding: 'application/json' },
    );
    return { did, seq: await seqOf(pds) };
  },

  // Ask a relay to crawl PDS `pds` (the relay must be on loopback too).
  async requestCrawl({ pds: index = 0, relay }) {
    const url = new URL('/xrpc/com.atproto.sync.requestCrawl', relay);
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ hostname: hostOf(pdsAt(index)) }),
    });
    return { status: res.status, body: await res.text() };
  },

  // The PDS's own view, for comparison with the relay's sync endpoints.
  async syncState({ pds: index = 0 }) {
    const pds = pdsAt(index);
    const agent = new AtpAgent({ service: pds.url });
    const repos = [];
    let cursor;
    do {
      const res = await agent.com.atproto.sync.listRepos({ limit: 1000, cursor });
      repos.push(...res.data.repos);
      cursor = res.data.cursor;
    } while (cursor);
    return { host: hostOf(pds), seq: await seqOf(pds), repos };
  },

  async events({ pds: index = 0, after = 0, limit }) {
    return eventsAfter(pdsAt(index), after, limit);
  },

  async seqs() {
    return Promise.all(pdses.map(seqOf));
  },

  async shutdown() {
    setImmediate(() => void stop(0));
    return {};
  },
};

let stopping;
function stop(code) {
  stopping ??= (async () => {
    const results = await Promise.allSettled([...pdses.map((p) => p.close()), plc.close()]);
    for (const r of results) if (r.status === 'rejected') process.stderr.write(`close failed: ${r.reason}\n`);
    for (const d of tempDirs) if (d) rmSync(d, { recursive: true, force: true });
    process.exit(code);
  })();
  return stopping;
}
process.on('SIGTERM', () => void stop(0));
process.on('SIGINT', () => void stop(0));

function reply(msg) {
  process.stdout.write(`${JSON.stringify(msg)}\n`);
}

reply({ type: 'ready', ...(await COMMANDS.info()) });

// Commands run one at a time, in the order they arrive.
let queue = Promise.resolve();
const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (!line.trim()) return;
  queue = queue.then(async () => {
    let msg;
    try {
      msg = JSON.parse(line);
      const fn = COMMANDS[msg.cmd];
      if (!fn) throw new Error(`unknown command ${msg.cmd}`);
      reply({ id: msg.id, ok: true, result: await fn(msg) });
    } catch (err) {
      const detail = err?.error ? `${err.error}: ${err.message}` : String(err?.stack ?? err);
      reply({ id: msg?.id, ok: false, error: detail });
    }
  });
});
rl.on('close', () => void queue.then(() => stop(0)));
