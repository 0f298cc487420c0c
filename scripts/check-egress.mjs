#!/usr/bin/env node
// Checks the rule that tests talk to loopback only: runs `npm test` (or the
// files given) under strace, and lists every connect() and send to an address
// outside 127.0.0.0/8 and ::1, with the command that made it and, for DNS,
// the name asked. Exits 1 if there is any, other than the two known and
// harmless ones: the npm registry during the interop suite's install
// (`npm ci`, installation rather than a test), and a UDP connect() that sends
// nothing (Chromium's IPv6 reachability probe: a UDP connect only picks a
// route). Not part of `npm test` (strace slows the suite ~2×); results go in
// docs/testing.md.
//
//   node scripts/check-egress.mjs [test files or prefixes…]
//
// Needs strace (`apt-get install strace`).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

if (spawnSync('strace', ['-V']).status !== 0) {
  console.error('check-egress: strace not found (apt-get install strace)');
  process.exit(2);
}
const dir = mkdtempSync(join(tmpdir(), 'atrelay-egress-'));
const trace = join(dir, 'trace');
const args = process.argv.slice(2);
const strace = [
  '-f',
  '-qq',
  '-s',
  '256',
  '-e',
  'trace=execve,clone,clone3,fork,vfork,socket,socketpair,close,connect,sendto,sendmsg,sendmmsg',
  '-e',
  'signal=none',
  '-o',
  trace,
  'npm',
  'test',
  ...(args.length > 0 ? ['--', ...args] : []),
];
const code = await new Promise((resolve) => {
  const child = spawn('strace', strace, { stdio: 'inherit' });
  child.on('exit', (c) => resolve(c ?? 1));
});

/** tid → the command its process runs (inherited from the thread or process that cloned it). */
const command = new Map();
/**
 * tid → its file-descriptor table: threads (and clones with CLONE_FILES)
 * share their parent's, a forked process gets a copy. fd state is kept per
 * table, as `${table} ${fd}`, and forgotten on close, so a number reused for
 * another socket (Chromium's IPC socketpairs) is not taken for the old one.
 */
const fdTable = new Map();
let nextTable = 1;
const tableOf = (tid) => {
  let t = fdTable.get(tid);
  if (t === undefined) {
    t = nextTable++;
    fdTable.set(tid, t);
  }
  return t;
};
/** `${table} ${fd}` → socket type. */
const sockets = new Map();
/** `${table} ${fd}` → the non-loopback address a UDP socket was connected to, until a packet is sent. */
const udpConnected = new Map();
/** Keys of udpConnected that have sent nothing yet. */
const silent = new Set();
const forget = (key) => {
  sockets.delete(key);
  udpConnected.delete(key);
  silent.delete(key);
};
const findings = [];
const pending = new Map(); // tid → the start of an unfinished call
/** UDP sockets connected off loopback that sent nothing (so far). */
let routeProbes = 0;

const isLoopback = (addr) => /^127\./.test(addr) || addr === '::1' || /^::ffff:127\./.test(addr);

/** The DNS question name in a query whose bytes strace printed (C escapes), or undefined. */
function dnsName(escaped) {
  const bytes = [];
  for (let i = 0; i < escaped.length; i++) {
    const ch = escaped[i];
    if (ch !== '\\') {
      bytes.push(ch.charCodeAt(0));
      continue;
    }
    const next = escaped[i + 1];
    const simple = { n: 10, t: 9, r: 13, v: 11, f: 12, '"': 34, '\\': 92 };
    if (next in simple) {
      bytes.push(simple[next]);
      i++;
    } else {
      const m = /^[0-7]{1,3}/.exec(escaped.slice(i + 1));
      if (!m) return undefined;
      bytes.push(Number.parseInt(m[0], 8));
      i += m[0].length;
    }
  }
  const labels = [];
  for (let p = 12; p < bytes.length && bytes[p] !== 0; ) {
    const len = bytes[p];
    if (len > 63) return undefined;
    labels.push(String.fromCharCode(...bytes.slice(p + 1, p + 1 + len)));
    p += len + 1;
  }
  return labels.length > 0 ? labels.join('.') : undefined;
}

function address(text) {
  const v4 = /sin_port=htons\((\d+)\), sin_addr=inet_addr\("([^"]+)"\)/.exec(text);
  if (v4) return { addr: v4[2], port: Number(v4[1]) };
  const v6 = /sin6_port=htons\((\d+)\).*inet_pton\(AF_INET6, "([^"]+)"/.exec(text);
  if (v6) return { addr: v6[2], port: Number(v6[1]) };
  return undefined;
}

function record(tid, what, target, detail) {
  const cmd = command.get(tid) ?? '?';
  const npmInstall =
    /(^|\/)npm(-cli\.js)? (ci|install|rebuild)\b/.test(cmd) || /npm-cli\.js (ci|install)/.test(cmd);
  findings.push({ allowed: npmInstall, cmd, what, target, detail });
}

for (const raw of readFileSync(trace, 'utf8').split('\n')) {
  const m = /^(\d+)\s+(.*)$/.exec(raw);
  if (!m) continue;
  const tid = m[1];
  let line = m[2];
  if (line.endsWith('<unfinished ...>')) {
    pending.set(tid, line.slice(0, -'<unfinished ...>'.length));
    continue;
  }
  const resumed = /^<\.\.\. \w+ resumed>(.*)$/.exec(line);
  if (resumed) {
    line = (pending.get(tid) ?? '') + resumed[1];
    pending.delete(tid);
  }
  const call = /^(\w+)\((.*)\)\s+=\s+(-?\d+|\?)/.exec(line);
  if (!call) continue;
  const [, name, body, ret] = call;
  if (name === 'execve' && ret === '0') {
    const argv = /\[(.*?)\]/.exec(body);
    command.set(tid, argv ? argv[1].replace(/"/g, '').replace(/, /g, ' ').slice(0, 160) : body.slice(0, 160));
  } else if (['clone', 'clone3', 'fork', 'vfork'].includes(name) && Number(ret) > 0) {
    command.set(ret, command.get(tid) ?? '?');
    const parent = tableOf(tid);
    if (/CLONE_FILES/.test(body)) fdTable.set(ret, parent);
    else {
      const child = tableOf(ret);
      for (const map of [sockets, udpConnected]) {
        for (const [key, v] of [...map]) {
          const [t, fd] = key.split(' ');
          if (Number(t) === parent) map.set(`${child} ${fd}`, v);
        }
      }
    }
  } else if (name === 'socket' && Number(ret) >= 0) {
    const key = `${tableOf(tid)} ${ret}`;
    forget(key);
    sockets.set(key, body.includes('SOCK_DGRAM') ? 'udp' : 'tcp');
  } else if (name === 'close' || name === 'socketpair') {
    const fds = name === 'close' ? [body.trim()] : (/\[(\d+), (\d+)\]/.exec(body)?.slice(1) ?? []);
    for (const fd of fds) forget(`${tableOf(tid)} ${fd}`);
  } else if (name === 'connect' || name === 'sendto' || name === 'sendmsg' || name === 'sendmmsg') {
    const fd = body.split(',')[0];
    const key = `${tableOf(tid)} ${fd}`;
    const to = address(body);
    if (name === 'connect') {
      if (!to || isLoopback(to.addr)) continue;
      if (sockets.get(key) === 'udp') {
        udpConnected.set(key, to);
        silent.add(key);
        routeProbes++;
      } else record(tid, 'tcp connect', `${to.addr}:${to.port}`);
      continue;
    }
    const target = to ?? udpConnected.get(key);
    if (!target || isLoopback(target.addr)) continue;
    if (silent.delete(key)) routeProbes--; // a packet went out: not a mere route probe
    const payload = /iov_base="((?:[^"\\]|\\.)*)"|^\d+, "((?:[^"\\]|\\.)*)"/.exec(body);
    const name53 = target.port === 53 && payload ? dnsName(payload[1] ?? payload[2]) : undefined;
    record(tid, `${name}`, `${target.addr}:${target.port}`, name53 ? `DNS query ${name53}` : undefined);
  }
}

const bad = findings.filter((f) => !f.allowed);
const summarize = (list) => {
  const counts = new Map();
  for (const f of list) {
    const k = `${f.what} ${f.target}${f.detail ? ` (${f.detail})` : ''} by ${f.cmd}`;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1]);
};
console.log(`\ncheck-egress: npm test exited ${code}`);
console.log(`- UDP connects to non-loopback addresses that sent nothing (route probes): ${routeProbes}`);
console.log(`- traffic of npm installs (allowed): ${findings.length - bad.length}`);
console.log(`- other traffic off loopback: ${bad.length}`);
for (const [k, n] of summarize(bad).slice(0, 50)) console.log(`  ${n}× ${k}`);
rmSync(dir, { recursive: true, force: true });
process.exit(bad.length > 0 || code !== 0 ? 1 : 0);
