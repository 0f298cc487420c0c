// Keeps the Node 22 side of the interop tests on loopback. The reference PDS
// and PLC servers call `app.listen(port)` with no host, which would listen on
// every interface, and their code can try to resolve or reach outside names
// (handle DNS lookups, app view URLs). Imported first by harness.mjs and
// consumer.mjs, this module patches the few Node entry points they all go
// through: server listen (a missing or wildcard host becomes 'localhost',
// which is 127.0.0.1 here), dns.lookup and the DNS resolver (names other than
// localhost fail as not found), and socket connects to IP literals (refused
// unless loopback). Every refusal is reported on stderr so a test log shows it.
import dns from 'node:dns';
import { syncBuiltinESMExports } from 'node:module';
import net from 'node:net';

const LOOPBACK_NAMES = new Set(['localhost', 'localhost.']);

export function isLoopbackAddress(host) {
  if (typeof host !== 'string') return false;
  const h = host.replace(/^\[|\]$/g, '');
  if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  if (h.startsWith('::ffff:')) return isLoopbackAddress(h.slice(7));
  return net.isIPv4(h) && h.startsWith('127.');
}

function isLoopbackName(host) {
  return LOOPBACK_NAMES.has(String(host).toLowerCase()) || isLoopbackAddress(host);
}

function refuse(what, host) {
  process.stderr.write(`[loopback-guard] refused ${what} ${host}\n`);
  const err = new Error(`loopback guard: ${what} ${host} refused`);
  err.code = 'ENOTFOUND';
  return err;
}

// listen(): force a loopback host.
const origListen = net.Server.prototype.listen;
net.Server.prototype.listen = function listen(...args) {
  const first = args[0];
  if (first !== null && typeof first === 'object' && !Array.isArray(first)) {
    if (first.path === undefined && first.handle === undefined && first.fd === undefined) {
      if (!first.host || !isLoopbackName(first.host)) args[0] = { ...first, host: 'localhost' };
    }
  } else if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
    if (typeof args[1] !== 'string' || !isLoopbackName(args[1])) {
      if (typeof args[1] === 'string') args[1] = 'localhost';
      else args.splice(1, 0, 'localhost');
    }
  } else if (first === undefined || typeof first === 'function') {
    args.unshift(0, 'localhost');
  }
  return origListen.apply(this, args);
};

// dns.lookup(): only loopback names.
const origLookup = dns.lookup;
dns.lookup = function lookup(hostname, options, callback) {
  const cb = typeof options === 'function' ? options : callback;
  if (!isLoopbackName(hostname)) {
    const err = refuse('lookup of', hostname);
    process.nextTick(() => cb(err));
    return {};
  }
  return origLookup.call(this, hostname, options, callback);
};
const origLookupPromise = dns.promises.lookup;
dns.promises.lookup = function lookup(hostname, options) {
  if (!isLoopbackName(hostname)) return Promise.reject(refuse('lookup of', hostname));
  return origLookupPromise.call(this, hostname, options);
};

// The c-ares resolver (handle TXT records and the like): nothing leaves.
const RESOLVE_METHODS = [
  'resolve',
  'resolve4',
  'resolve6',
  'resolveAny',
  'resolveCname',
  'resolveTxt',
  'resolveSrv',
];
for (const name of RESOLVE_METHODS) {
  const failCb = (hostname, ...rest) => {
    const cb = rest.find((r) => typeof r === 'function');
    const err = refuse(`${name} of`, hostname);
    process.nextTick(() => cb?.(err));
  };
  const failPromise = (hostname) => Promise.reject(refuse(`${name} of`, hostname));
  if (typeof dns[name] === 'function') dns[name] = failCb;
  if (dns.Resolver?.prototype[name]) dns.Resolver.prototype[name] = failCb;
  if (typeof dns.promises[name] === 'function') dns.promises[name] = failPromise;
  if (dns.promises.Resolver?.prototype[name]) dns.promises.Resolver.prototype[name] = failPromise;
}

// connect() to an IP literal: loopback only (names go through dns.lookup above).
const origConnect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function connect(...args) {
  const opts = args[0];
  let host;
  if (Array.isArray(opts)) host = opts[0]?.host;
  else if (opts !== null && typeof opts === 'object') host = opts.path === undefined ? opts.host : undefined;
  else if (typeof opts === 'number' || /^\d+$/.test(String(opts)))
    host = typeof args[1] === 'string' ? args[1] : 'localhost';
  if (host !== undefined && net.isIP(String(host).replace(/^\[|\]$/g, '')) && !isLoopbackAddress(host)) {
    const err = refuse('connection to', host);
    process.nextTick(() => this.destroy(err));
    return this;
  }
  return origConnect.apply(this, args);
};

// Named ESM imports of node:dns / node:net see the patched functions too.
syncBuiltinESMExports();
