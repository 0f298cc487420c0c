// Who is the client: the one home for the address every per-client limit,
// listing and log line uses.
//
// - The client's address is the socket's peer address, unless that peer is a
//   trusted proxy (RELAY_TRUSTED_PROXIES, IPs or CIDRs; none by default): then
//   `X-Forwarded-For` is read from the right, skipping addresses that are
//   themselves trusted proxies, and the first one that is not is the client.
//   Only trusted proxies append honestly, so everything left of the first
//   untrusted entry may be forged and is never looked at. From an untrusted
//   peer the header is ignored entirely.
// - Addresses are normalised: IPv4-mapped IPv6 (`::ffff:1.2.3.4`, what a
//   dual-stack socket reports) becomes the IPv4 address, IPv6 is written in
//   RFC 5952 form, zone ids are dropped.
// - Limits key on the client's *network*, not its address: an IPv4 address, or
//   the /64 an IPv6 address is in (one IPv6 customer typically owns a whole
//   /64, so keying on the address would let one of them take every slot).
import type { IncomingMessage } from 'node:http';
import { isIPv4, isIPv6 } from 'node:net';

/** The address used when a socket has none (already closed). */
export const UNKNOWN_CLIENT = 'unknown';

/** X-Forwarded-For entries looked at, from the right; more trusted hops than this are not plausible. */
const MAX_FORWARDED_HOPS = 32;

/** An IPv4 address as 4 bytes or an IPv6 address as 16, or undefined if `raw` is neither. */
export function ipBytes(raw: string): Uint8Array | undefined {
  const ip = stripZone(raw);
  if (isIPv4(ip)) return Uint8Array.from(ip.split('.').map(Number));
  if (!isIPv6(ip)) return undefined;
  const out = new Uint8Array(16);
  let text = ip;
  let tail: number[] = [];
  // A trailing dotted IPv4 part (`::ffff:1.2.3.4`) is two 16-bit groups.
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    const v4 = text
      .slice(lastColon + 1)
      .split('.')
      .map(Number);
    tail = [(v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]];
    text = `${text.slice(0, lastColon + 1)}0:0`; // placeholders, replaced below
  }
  const [headText, tailText] = text.includes('::') ? text.split('::') : [text, undefined];
  const head = headText === '' ? [] : headText.split(':').map((g) => Number.parseInt(g, 16));
  const rest =
    tailText === undefined || tailText === '' ? [] : tailText.split(':').map((g) => Number.parseInt(g, 16));
  const groups =
    tailText === undefined
      ? head
      : [...head, ...new Array<number>(8 - head.length - rest.length).fill(0), ...rest];
  if (tail.length === 2) {
    groups[6] = tail[0];
    groups[7] = tail[1];
  }
  for (let i = 0; i < 8; i++) {
    out[i * 2] = groups[i] >> 8;
    out[i * 2 + 1] = groups[i] & 0xff;
  }
  return out;
}

function stripZone(raw: string): string {
  const pct = raw.indexOf('%');
  return pct >= 0 ? raw.slice(0, pct) : raw;
}

/** 16 IPv6 bytes that carry an IPv4-mapped address (::ffff:0:0/96). */
function isV4Mapped(b: Uint8Array): boolean {
  if (b.length !== 16) return false;
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

/** IPv4 bytes for an IPv4 or IPv4-mapped IPv6 address; other bytes unchanged. */
function unmap(b: Uint8Array): Uint8Array {
  return isV4Mapped(b) ? b.subarray(12) : b;
}

/** RFC 5952 text of 4 or 16 address bytes (longest run of two or more zero groups compressed). */
function formatIp(b: Uint8Array): string {
  if (b.length === 4) return b.join('.');
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i] << 8) | b[i + 1]);
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/**
 * The normalised form of an IP address (IPv4-mapped → IPv4, IPv6 in RFC 5952
 * form, zone dropped), or undefined if `raw` is not an IP address.
 */
export function normaliseIp(raw: string): string | undefined {
  const b = ipBytes(raw);
  return b ? formatIp(unmap(b)) : undefined;
}

/**
 * The key per-client limits count under: the IPv4 address, or the IPv6
 * address's /64 (`2001:db8:1:2::/64`). Anything that is not an IP address
 * (e.g. UNKNOWN_CLIENT) is its own key.
 */
export function clientLimitKey(address: string): string {
  const b = ipBytes(address);
  if (!b) return address;
  const ip = unmap(b);
  if (ip.length === 4) return formatIp(ip);
  const prefix = new Uint8Array(16);
  prefix.set(ip.subarray(0, 8));
  return `${formatIp(prefix)}/64`;
}

/** The normalised peer address of a request's socket. */
export function socketAddress(req: IncomingMessage): string {
  const raw = req.socket.remoteAddress;
  if (raw === undefined) return UNKNOWN_CLIENT;
  return normaliseIp(raw) ?? raw;
}

/** An address block: IPv4 (4 bytes) or IPv6 (16 bytes) with a prefix length in bits. */
export interface AddressBlock {
  bytes: Uint8Array;
  prefix: number;
}

/**
 * Parses a comma-separated list of IP addresses and CIDR blocks
 * (`10.0.0.0/8, 192.0.2.7, fd00::/8`). Throws an Error naming the bad entry.
 * IPv4-mapped IPv6 blocks are read as the IPv4 block they map.
 */
export function parseAddressBlocks(raw: string): AddressBlock[] {
  const out: AddressBlock[] = [];
  for (const entry of raw.split(',')) {
    const text = entry.trim();
    if (text === '') continue;
    const slash = text.indexOf('/');
    const ipText = slash >= 0 ? text.slice(0, slash) : text;
    const b = ipBytes(ipText);
    if (!b || ipText.includes('%')) throw new Error(`"${text}" is not an IP address or CIDR block`);
    let prefix = b.length * 8;
    if (slash >= 0) {
      const p = text.slice(slash + 1);
      if (!/^\d{1,3}$/.test(p) || Number(p) > b.length * 8) {
        throw new Error(`"${text}" has a bad prefix length (0 to ${b.length * 8})`);
      }
      prefix = Number(p);
    }
    if (isV4Mapped(b)) {
      if (prefix < 96) throw new Error(`"${text}": an IPv4-mapped block needs a prefix of at least 96`);
      out.push({ bytes: b.slice(12), prefix: prefix - 96 });
    } else {
      out.push({ bytes: b, prefix });
    }
  }
  return out;
}

function inBlock(ip: Uint8Array, block: AddressBlock): boolean {
  if (ip.length !== block.bytes.length) return false;
  const full = block.prefix >> 3;
  for (let i = 0; i < full; i++) if (ip[i] !== block.bytes[i]) return false;
  const bits = block.prefix & 7;
  if (bits === 0) return true;
  const mask = (0xff << (8 - bits)) & 0xff;
  return (ip[full] & mask) === (block.bytes[full] & mask);
}

/** One X-Forwarded-For entry as an address: bare, `[v6]`, `[v6]:port` or `v4:port`. */
function forwardedEntry(raw: string): Uint8Array | undefined {
  let text = raw.trim();
  const bracketed = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(text);
  if (bracketed) text = bracketed[1];
  else if (/^[\d.]+:\d{1,5}$/.test(text)) text = text.slice(0, text.indexOf(':'));
  const b = ipBytes(text);
  return b ? unmap(b) : undefined;
}

/** Resolves "who is the client" for requests, honouring X-Forwarded-For from trusted proxies only. */
export class ClientAddressResolver {
  private readonly trusted: readonly AddressBlock[];

  constructor(trustedProxies: readonly AddressBlock[] = []) {
    this.trusted = trustedProxies;
  }

  /** True when `address` (any form) is in a trusted proxy block. */
  isTrustedProxy(address: string): boolean {
    const b = ipBytes(address);
    return b !== undefined && this.isTrusted(unmap(b));
  }

  private isTrusted(ip: Uint8Array): boolean {
    for (const block of this.trusted) if (inBlock(ip, block)) return true;
    return false;
  }

  /** The client's normalised address (see the file comment for the X-Forwarded-For rule). */
  address(req: IncomingMessage): string {
    const peer = socketAddress(req);
    if (this.trusted.length === 0) return peer;
    const peerBytes = ipBytes(peer);
    if (!peerBytes || !this.isTrusted(peerBytes)) return peer;
    const header = req.headers['x-forwarded-for'];
    if (header === undefined) return peer;
    // Node joins repeated X-Forwarded-For headers with ", ", in order.
    const entries = (Array.isArray(header) ? header.join(',') : header).split(',');
    let client = peerBytes;
    for (let i = entries.length - 1, hops = 0; i >= 0 && hops < MAX_FORWARDED_HOPS; i--, hops++) {
      if (!this.isTrusted(client)) break;
      const next = forwardedEntry(entries[i]);
      // A malformed entry was written by (or passed through) the last trusted
      // proxy: nothing further left can be trusted, so that proxy is the client.
      if (!next) break;
      client = next;
    }
    return formatIp(client);
  }

  /** The key this request's client counts under for per-client limits (IPv4 address or IPv6 /64). */
  limitKey(req: IncomingMessage): string {
    return clientLimitKey(this.address(req));
  }
}
