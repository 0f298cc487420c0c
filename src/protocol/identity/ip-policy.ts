// Which IP addresses the relay may connect to when it follows a URL that came
// from the network (DID documents, handles, requestCrawl hostnames).
//
// Anyone can publish a DID document whose PDS endpoint points at 127.0.0.1,
// 169.254.169.254 (cloud metadata) or an internal 10.x service, so every
// address is classified here before a socket is opened. IPv4 is checked
// against the special-purpose ranges; IPv6 is allowed only inside global
// unicast (2000::/3) minus its special blocks, and the IPv6 forms that carry
// an IPv4 address (mapped ::ffff:0:0/96, NAT64 64:ff9b::/96, 6to4 2002::/16)
// are judged by the IPv4 address they embed. Parsing is done here rather
// than by string prefix so that spellings like `::ffff:a00:1` or
// `0:0:0:0:0:ffff:10.0.0.1` cannot slip through.
import { isIPv4, isIPv6 } from 'node:net';

const IPV4_BLOCKED: ReadonlyArray<readonly [string, number, string]> = [
  ['0.0.0.0', 8, 'unspecified ("this network")'],
  ['10.0.0.0', 8, 'private'],
  ['100.64.0.0', 10, 'carrier-grade NAT'],
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link-local'],
  ['172.16.0.0', 12, 'private'],
  ['192.0.0.0', 24, 'IETF protocol assignments'],
  ['192.0.2.0', 24, 'documentation'],
  ['192.88.99.0', 24, '6to4 relay anycast'],
  ['192.168.0.0', 16, 'private'],
  ['198.18.0.0', 15, 'benchmarking'],
  ['198.51.100.0', 24, 'documentation'],
  ['203.0.113.0', 24, 'documentation'],
  ['224.0.0.0', 4, 'multicast'],
  ['240.0.0.0', 4, 'reserved'],
];

const ipv4Blocked = IPV4_BLOCKED.map(([base, bits, reason]) => ({
  base: ipv4ToInt(parseIpv4(base)!),
  mask: bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0,
  reason,
}));

/** Strict dotted-quad decimal IPv4 (what DNS and the WHATWG URL parser produce). */
export function parseIpv4(s: string): Uint8Array | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i];
    if (!/^\d{1,3}$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out[i] = n;
  }
  return out;
}

/** IPv6 text (optionally in brackets, optionally with a trailing dotted quad) to 16 bytes. No zone ids. */
export function parseIpv6(input: string): Uint8Array | undefined {
  let s = input;
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  if (s.includes('%')) return undefined;
  let tail: Uint8Array | undefined;
  const lastColon = s.lastIndexOf(':');
  if (s.indexOf('.', lastColon) !== -1) {
    tail = parseIpv4(s.slice(lastColon + 1));
    if (!tail) return undefined;
    s = `${s.slice(0, lastColon + 1)}0:0`;
  }
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const parseGroups = (part: string): number[] | undefined => {
    if (part === '') return [];
    const groups: number[] = [];
    for (const g of part.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      groups.push(Number.parseInt(g, 16));
    }
    return groups;
  };
  const head = parseGroups(halves[0]);
  const rest = halves.length === 2 ? parseGroups(halves[1]) : [];
  if (!head || !rest) return undefined;
  let groups: number[];
  if (halves.length === 2) {
    const fill = 8 - head.length - rest.length;
    if (fill < 1) return undefined;
    groups = [...head, ...new Array<number>(fill).fill(0), ...rest];
  } else {
    groups = head;
  }
  if (groups.length !== 8) return undefined;
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[2 * i] = groups[i] >> 8;
    out[2 * i + 1] = groups[i] & 0xff;
  }
  if (tail) out.set(tail, 12);
  return out;
}

function ipv4ToInt(b: Uint8Array): number {
  return ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
}

function ipv4Refusal(b: Uint8Array): string | undefined {
  const n = ipv4ToInt(b);
  for (const r of ipv4Blocked) if ((n & r.mask) >>> 0 === r.base) return r.reason;
  return undefined;
}

function startsWith(b: Uint8Array, prefix: readonly number[], bits: number): boolean {
  for (let i = 0; i < bits; i++) {
    const byte = i >> 3;
    const bit = 7 - (i & 7);
    if (((b[byte] >> bit) & 1) !== (((prefix[byte] ?? 0) >> bit) & 1)) return false;
  }
  return true;
}

function embeddedIpv4Refusal(v4: Uint8Array, form: string): string | undefined {
  const r = ipv4Refusal(v4);
  return r === undefined ? undefined : `${form} of ${r} IPv4 address`;
}

function ipv6Refusal(b: Uint8Array): string | undefined {
  // ::ffff:0:0/96 IPv4-mapped
  if (startsWith(b, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff], 96)) {
    return embeddedIpv4Refusal(b.subarray(12), 'IPv4-mapped form');
  }
  // 64:ff9b::/96 well-known NAT64 prefix
  if (startsWith(b, [0x00, 0x64, 0xff, 0x9b], 96)) {
    return embeddedIpv4Refusal(b.subarray(12), 'NAT64 form');
  }
  // 2002::/16 6to4: bytes 2..5 are the IPv4 address
  if (startsWith(b, [0x20, 0x02], 16)) {
    return embeddedIpv4Refusal(b.subarray(2, 6), '6to4 form');
  }
  if (b.every((x) => x === 0)) return 'unspecified';
  if (startsWith(b, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 128)) return 'loopback';
  // ::/96 (IPv4-compatible, deprecated) and everything else outside global unicast
  if (startsWith(b, [], 96)) return 'IPv4-compatible (deprecated)';
  if (startsWith(b, [0x00, 0x64, 0xff, 0x9b, 0x00, 0x01], 48)) return 'local-use NAT64';
  if (startsWith(b, [0xfc], 7)) return 'unique local (fc00::/7)';
  if (startsWith(b, [0xfe, 0x80], 10)) return 'link-local (fe80::/10)';
  if (startsWith(b, [0xfe, 0xc0], 10)) return 'site-local (deprecated)';
  if (startsWith(b, [0xff], 8)) return 'multicast';
  if (!startsWith(b, [0x20], 3)) return 'not global unicast';
  if (startsWith(b, [0x20, 0x01, 0x0d, 0xb8], 32)) return 'documentation';
  if (startsWith(b, [0x3f, 0xff], 20)) return 'documentation';
  if (startsWith(b, [0x20, 0x01, 0x00, 0x00], 23)) return 'IETF protocol assignments (incl. Teredo)';
  return undefined;
}

/**
 * Why connecting to `address` is refused, or undefined when it is a public
 * unicast address. Text that is not an IP address is refused too.
 */
export function addressRefusalReason(address: string): string | undefined {
  let a = address;
  if (a.startsWith('[') && a.endsWith(']')) a = a.slice(1, -1);
  if (isIPv4(a)) {
    const b = parseIpv4(a);
    return b ? ipv4Refusal(b) : 'unparseable IPv4 address';
  }
  if (a.includes('%')) return 'IPv6 address with a zone id';
  if (isIPv6(a)) {
    const b = parseIpv6(a);
    return b ? ipv6Refusal(b) : 'unparseable IPv6 address';
  }
  return 'not an IP address';
}

export function isPublicAddress(address: string): boolean {
  return addressRefusalReason(address) === undefined;
}
