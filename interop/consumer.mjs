// A firehose consumer built from Bluesky's own library, run under Node 22:
// @atproto/sync's Firehose with verification on (unauthenticatedCommits and
// unauthenticatedHandles false), so every commit's signature is checked
// against the key in the DID document from the test PLC, and every op's MST
// inclusion/exclusion proof against the commit's blocks. It prints JSON lines
// on stdout, so a test under another Node can compare them with what the PDSes
// sequenced:
//   {"type":"frame", "kind":"commit"|"identity"|"account"|"sync"|..., "seq", "did", ...}
//       every message as received, before verification (so ops the library
//       drops because they fail verification show up as missing events);
//   {"type":"event", "event":"create"|"update"|"delete"|"identity"|"account"|"sync", "seq", "did", ...}
//       every event the library handed to its handler, i.e. verified;
//   {"type":"done", "seq"}  after each message was processed to the end (its events printed);
//   {"type":"error", "name", "message", "cause"}  any error the library reported;
//   {"type":"connect", "cursor"}  each (re)connection, with the cursor it resumes from.
// Usage:
//   node consumer.mjs --service ws://127.0.0.1:PORT --plc http://localhost:PORT
//                     [--cursor N] [--pds http://localhost:PORT ...]
// --cursor is where it starts; on a reconnect it resumes after the last seq it
// saw, like a real consumer. --pds lists where handles are resolved (the
// /.well-known/atproto-did of each PDS, with the handle as Host) instead of
// DNS. SIGTERM or stdin closing stops it.
import './loopback-guard.mjs';
import http from 'node:http';
import { IdResolver } from '@atproto/identity';
import { Firehose } from '@atproto/sync';

function argList(name) {
  const out = [];
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) if (argv[i] === `--${name}`) out.push(argv[i + 1]);
  return out;
}
const service = argList('service')[0];
const plcUrl = argList('plc')[0];
const pdsUrls = argList('pds');
const cursorArg = argList('cursor')[0];
if (!service || !plcUrl) {
  process.stderr.write('usage: consumer.mjs --service WS_URL --plc PLC_URL [--cursor N] [--pds URL ...]\n');
  process.exit(2);
}

function print(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

// No DID cache: every identity event and key lookup sees the PLC's current state.
const idResolver = new IdResolver({ plcUrl, fetch: globalThis.fetch, timeout: 5000 });
idResolver.handle.resolve = async (handle) => {
  for (const pds of pdsUrls) {
    const did = await wellKnownDid(pds, handle).catch(() => undefined);
    if (did?.startsWith('did:')) return did;
  }
  return undefined;
};

function wellKnownDid(pdsUrl, handle) {
  return new Promise((resolve, reject) => {
    const url = new URL('/.well-known/atproto-did', pdsUrl);
    const req = http.get(url, { headers: { host: handle }, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => {
        body += c;
      });
      res.on('end', () => resolve(res.statusCode === 200 ? body.trim() : undefined));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

let lastSeq = cursorArg === undefined ? undefined : Number(cursorArg);

function frameSummary(evt) {
  const kind = String(evt.$type ?? '').split('#')[1] ?? 'unknown';
  const out = { type: 'frame', kind, seq: evt.seq, did: evt.repo ?? evt.did };
  if (kind === 'commit') {
    out.commit = evt.commit?.toString();
    out.rev = evt.rev;
    out.since = evt.since ?? null;
    out.tooBig = evt.tooBig ?? false;
    out.ops = (evt.ops ?? []).map((op) => ({
      action: op.action,
      path: op.path,
      cid: op.cid ? op.cid.toString() : null,
    }));
  } else if (kind === 'sync') out.rev = evt.rev;
  else if (kind === 'identity') out.handle = evt.handle ?? null;
  else if (kind === 'account') {
    out.active = evt.active;
    out.status = evt.status ?? null;
  } else if (kind === 'info') {
    out.name = evt.name;
    out.message = evt.message ?? null;
  }
  return out;
}

function eventSummary(evt) {
  const out = { type: 'event', event: evt.event, seq: evt.seq, did: evt.did };
  if (evt.event === 'create' || evt.event === 'update' || evt.event === 'delete') {
    out.commit = evt.commit.toString();
    out.rev = evt.rev;
    out.path = `${evt.collection}/${evt.rkey}`;
    out.cid = evt.cid ? evt.cid.toString() : null;
  } else if (evt.event === 'identity') {
    out.handle = evt.handle ?? null;
    out.pds = evt.didDocument?.service?.find((s) => s.id === '#atproto_pds')?.serviceEndpoint ?? null;
  } else if (evt.event === 'account') {
    out.active = evt.active;
    out.status = evt.status ?? null;
  } else if (evt.event === 'sync') {
    out.rev = evt.rev;
    out.cid = evt.cid.toString();
  }
  return out;
}

const firehose = new Firehose({
  idResolver,
  service,
  unauthenticatedCommits: false,
  unauthenticatedHandles: false,
  subscriptionReconnectDelay: 200,
  maxReconnectSeconds: 1,
  // Called on every (re)connect: the cursor the library asks the server for.
  getCursor: () => {
    print({ type: 'connect', cursor: lastSeq ?? null });
    return lastSeq;
  },
  handleEvent: (evt) => {
    print(eventSummary(evt));
  },
  onError: (err) => {
    print({
      type: 'error',
      name: err.name,
      message: err.message,
      cause: err.cause ? String(err.cause?.message ?? err.cause) : null,
    });
  },
});

// Log each message as received, then let the library parse and verify it.
const parseEvt = firehose.parseEvt.bind(firehose);
firehose.parseEvt = async (evt) => {
  print(frameSummary(evt));
  const parsed = await parseEvt(evt);
  if (typeof evt.seq === 'number') lastSeq = evt.seq;
  return parsed;
};

// Each message is processed to the end (verified, every write handed to the
// handler) before the library reads the next one (no runner): a `done` line
// after it lets a test wait until everything received so far is through.
const processEvt = firehose.processEvt.bind(firehose);
firehose.processEvt = async (evt) => {
  try {
    await processEvt(evt);
  } finally {
    print({ type: 'done', seq: evt.seq ?? null });
  }
};

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  await firehose.destroy().catch(() => {});
  process.exit(0);
}
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
process.stdin.on('end', () => void stop());
process.stdin.resume();

print({ type: 'started', service, cursor: lastSeq ?? null });
void firehose.start();
