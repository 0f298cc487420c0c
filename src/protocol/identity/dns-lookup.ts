// The relay's hostname lookup for everything it dials on the network's word
// (PDS hosts, DID documents, handle domains, PLC): DNS through c-ares, not
// the system's getaddrinfo.
//
// Why: `dns.lookup` (getaddrinfo) blocks one of libuv's four threadpool
// threads until the system resolver answers, and the same threads do the
// file event log's writes and fdatasyncs. A hostname whose DNS does not
// answer holds a thread for the resolver's whole timeout (5 s with glibc's
// defaults): measured in the relay under the end-to-end benchmark, the
// well-known lookups of handle domains the DNS server did not answer took
// 5,010 ms each, and any PDS can make the relay look up as many handle
// domains as it sends #identity events. c-ares queries are sockets on the
// event loop: a silent DNS server costs a timer, not a thread.
//
// What changes against getaddrinfo: /etc/hosts and nsswitch are not read (a
// public relay resolves public names through DNS), except that `localhost`
// and `*.localhost` are the loopback addresses (RFC 6761) without a query.
// A and AAAA are asked at once; IPv4 addresses come first (the fetcher dials
// the first address), then IPv6. No answer of either kind is ENOTFOUND,
// like getaddrinfo's.
import { Resolver } from 'node:dns/promises';

export interface LookupAddressResult {
  address: string;
  family: 4 | 6;
}

/** The two c-ares queries a lookup needs (a `Resolver` from node:dns/promises, or a stand-in in tests). */
export interface AddressResolver {
  resolve4(hostname: string): Promise<string[]>;
  resolve6(hostname: string): Promise<string[]>;
}

/** Per query: 2.5 s, tried twice (c-ares's defaults are 5 s and 4 tries); the fetcher's own deadline is 5 s. */
const RESOLVER_TIMEOUT_MS = 2_500;
const RESOLVER_TRIES = 2;

const LOOPBACK: readonly LookupAddressResult[] = [
  { address: '127.0.0.1', family: 4 },
  { address: '::1', family: 6 },
];

/** A lookup of every address of `hostname` through `resolver` (see the file comment). */
export function addressLookup(
  resolver: AddressResolver,
): (hostname: string) => Promise<LookupAddressResult[]> {
  return async (hostname) => {
    const name = hostname.toLowerCase().replace(/\.$/, '');
    if (name === 'localhost' || name.endsWith('.localhost')) return [...LOOPBACK];
    const [v4, v6] = await Promise.allSettled([resolver.resolve4(name), resolver.resolve6(name)]);
    const out: LookupAddressResult[] = [];
    if (v4.status === 'fulfilled') for (const address of v4.value) out.push({ address, family: 4 });
    if (v6.status === 'fulfilled') for (const address of v6.value) out.push({ address, family: 6 });
    if (out.length > 0) return out;
    // neither answered with an address: a failure of the A query says most (ENOTFOUND, ETIMEOUT, ...)
    if (v4.status === 'rejected') throw v4.reason;
    if (v6.status === 'rejected') throw v6.reason;
    throw Object.assign(new Error(`no addresses for ${name}`), { code: 'ENOTFOUND', hostname: name });
  };
}

/**
 * A c-ares resolver with the relay's timeouts, asking `servers` (RELAY_DNS_SERVERS:
 * `IP`, `IP:port`, `[IPv6]:port`) or, when none are given, the system's
 * (/etc/resolv.conf). The relay makes one and uses it for every name:
 * addresses (addressLookup) and handles' TXT records.
 */
export function createDnsResolver(servers: readonly string[] = []): Resolver {
  const resolver = new Resolver({ timeout: RESOLVER_TIMEOUT_MS, tries: RESOLVER_TRIES });
  if (servers.length > 0) resolver.setServers(servers);
  return resolver;
}

/** The default lookup where no resolver is given: c-ares with the system's DNS servers. */
export const dnsLookup = addressLookup(createDnsResolver());
