// Network checks on a host before the relay subscribes to it, and the SSRF
// guard for the subscription socket itself.
//
// describeServer: a crawl target must answer com.atproto.server
// .describeServer with a service DID (proof that it is a PDS, not any web
// server), and must not be another relay — a `Server` header naming
// atproto-relay means subscribing would build a relay loop. The request goes
// through the safe fetcher, which resolves the name once, refuses
// private/loopback addresses and pins the checked address.
//
// The WebSocket dial does its own DNS resolution inside node:net, so the
// same policy is applied there through the `lookup` option: every address is
// checked and only a checked one is returned, so a DNS answer that changes
// between describeServer and the dial (rebinding) cannot reach an internal
// address. IP literals skip `lookup` in node:net, so they are checked before
// dialling (assertDialable), which also refuses numeric names a URL parser
// would turn into an IPv4 address (`0x7f.0x1`, `2130706433`), in case such a
// name is in the store from before normaliseHostname refused them.
import type { LookupAddress } from 'node:dns';
import { isIP } from 'node:net';
import { addressRefusalReason } from '../protocol/identity/ip-policy.ts';
import {
  defaultLookup,
  type LookupFn,
  type SafeFetcher,
  SsrfRefusedError,
} from '../protocol/identity/safe-fetch.ts';
import { isAmbiguousNumericHost } from '../store/hostname.ts';
import { CrawlRefusedError, type CrawlTarget, httpBase } from './host-policy.ts';

export interface DescribeServerResult {
  did: string;
}

/** Calls describeServer; throws CrawlRefusedError when the host is unreachable, not a PDS or a relay. */
export async function checkDescribeServer(
  fetcher: SafeFetcher,
  target: CrawlTarget,
  timeoutMs = 10_000,
): Promise<DescribeServerResult> {
  const url = `${httpBase(target)}/xrpc/com.atproto.server.describeServer`;
  let res: Awaited<ReturnType<SafeFetcher['getJson']>>;
  try {
    res = await fetcher.getJson(url, { timeoutMs, maxResponseBytes: 64 * 1024 });
  } catch (err) {
    if (err instanceof SsrfRefusedError) {
      throw new CrawlRefusedError(400, 'InvalidRequest', `host address not allowed: ${err.reason}`);
    }
    throw new CrawlRefusedError(
      400,
      'InvalidRequest',
      `host did not answer describeServer: ${(err as Error).message}`,
    );
  }
  const server = res.headers.server;
  if (typeof server === 'string' && server.toLowerCase().includes('atproto-relay')) {
    throw new CrawlRefusedError(400, 'HostBanned', 'host is a relay (Server: atproto-relay)');
  }
  const json = res.json as { did?: unknown } | null;
  if (!json || typeof json !== 'object' || typeof json.did !== 'string' || !json.did.startsWith('did:')) {
    throw new CrawlRefusedError(400, 'InvalidRequest', 'describeServer did not return a service DID');
  }
  return { did: json.did };
}

type NodeLookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

export type NodeLookup = (hostname: string, options: { all?: boolean }, cb: NodeLookupCallback) => void;

/**
 * A node:net `lookup` that resolves through `lookup` and fails the dial if
 * any address is non-public (unless allowPrivate).
 */
export function guardedLookup(lookup: LookupFn = defaultLookup, allowPrivate = false): NodeLookup {
  return (hostname, options, cb) => {
    lookup(hostname).then(
      (addresses) => {
        if (addresses.length === 0) {
          cb(Object.assign(new Error(`no addresses for ${hostname}`), { code: 'ENOTFOUND' }), '');
          return;
        }
        if (!allowPrivate) {
          for (const a of addresses) {
            const reason = addressRefusalReason(a.address);
            if (reason !== undefined) {
              cb(
                Object.assign(new Error(`refused ${hostname}: address ${a.address} is ${reason}`), {
                  code: 'ESSRF',
                }),
                '',
              );
              return;
            }
          }
        }
        if (options?.all)
          cb(
            null,
            addresses.map((a) => ({ address: a.address, family: a.family })),
          );
        else cb(null, addresses[0].address, addresses[0].family);
      },
      (err: NodeJS.ErrnoException) => cb(err, ''),
    );
  };
}

/**
 * Throws when the hostname is an IP literal the policy refuses (node:net
 * skips lookup for literals) or a numeric name that is not a dotted quad
 * (refused whatever the policy: it is never a real host name).
 */
export function assertDialable(hostname: string, allowPrivate: boolean): void {
  const name = hostname.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
  if (isIP(name) === 0 && isAmbiguousNumericHost(name)) {
    throw new Error(`refused to dial ${hostname}: numeric host name that is not a dotted-quad IPv4 address`);
  }
  if (allowPrivate) return;
  if (isIP(name) === 0) return;
  const reason = addressRefusalReason(name);
  if (reason !== undefined) throw new Error(`refused to dial ${hostname}: address is ${reason}`);
}
