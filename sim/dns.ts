// A DNS server for the simulated network, on 127.0.0.1 (UDP), so a relay run
// as its own process (tests, benchmarks) resolves names without sending a
// query off the machine. Without it the relay asks the system's DNS servers
// (/etc/resolv.conf: on a CI machine a private-range or public address) for
// every handle it checks (`_atproto.<handle>` TXT, then the handle domain's
// addresses for its well-known URL), and the simulated handles end in the
// reserved `.test` TLD, so every check was a real query that could only fail.
// The relay is pointed here with RELAY_DNS_SERVERS.
//
// It answers what the simulated network knows: `_atproto.<handle>` TXT
// `did=<did>` when `resolveHandle` knows the handle, and the addresses in
// `hosts` (loopback, as everything in the simulation). Every other name is
// NXDOMAIN, at once, so a lookup the simulation cannot answer fails fast
// instead of waiting for a timeout. Only standard queries of one question
// are answered (what c-ares sends); anything else gets FORMERR or NOTIMP,
// and a response (not a query) gets nothing.
import { createSocket, type Socket } from 'node:dgram';

const TYPE_A = 1;
const TYPE_TXT = 16;
const TYPE_AAAA = 28;
const CLASS_IN = 1;
const RCODE_OK = 0;
const RCODE_FORMERR = 1;
const RCODE_NXDOMAIN = 3;
const RCODE_NOTIMP = 4;
/** What a client may read from an answer (seconds); short, as the simulation changes handles. */
const TTL_SECONDS = 1;
/** Queries kept for `queries` (a long benchmark asks many). */
const MAX_KEPT_QUERIES = 10_000;

export interface SimDnsOptions {
  /** The DID a handle points at (e.g. the simulated PLC's `resolveHandle`), null/undefined when none. */
  resolveHandle?: (handle: string) => string | null | undefined;
  /** Name → IPv4 and IPv6 addresses it resolves to. */
  hosts?: ReadonlyMap<string, readonly string[]>;
}

interface Question {
  name: string;
  type: number;
  /** Offset just past the question, where the answers start. */
  end: number;
}

/** The question of a standard one-question query, or the rcode to refuse it with. */
function readQuestion(msg: Buffer): Question | number {
  if (msg.length < 12) return RCODE_FORMERR;
  const flags = msg.readUInt16BE(2);
  if (((flags >> 11) & 0xf) !== 0) return RCODE_NOTIMP; // opcode other than QUERY
  if (msg.readUInt16BE(4) !== 1) return RCODE_FORMERR;
  const labels: string[] = [];
  let pos = 12;
  for (;;) {
    if (pos >= msg.length) return RCODE_FORMERR;
    const len = msg[pos++];
    if (len === 0) break;
    if (len > 63 || pos + len > msg.length) return RCODE_FORMERR; // no compression in a question
    labels.push(msg.toString('latin1', pos, pos + len));
    pos += len;
  }
  if (pos + 4 > msg.length) return RCODE_FORMERR;
  const type = msg.readUInt16BE(pos);
  const cls = msg.readUInt16BE(pos + 2);
  if (cls !== CLASS_IN) return RCODE_NOTIMP;
  return { name: labels.join('.').toLowerCase(), type, end: pos + 4 };
}

function addressBytes(address: string): Buffer | undefined {
  if (/^\d+\.\d+\.\d+\.\d+$/.test(address)) return Buffer.from(address.split('.').map(Number));
  if (address === '::1') return Buffer.from([...new Array(15).fill(0), 1]);
  return undefined; // the simulation uses loopback only
}

function txtBytes(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  const parts: Buffer[] = [];
  for (let i = 0; i < bytes.length || i === 0; i += 255) {
    const chunk = bytes.subarray(i, i + 255);
    parts.push(Buffer.from([chunk.length]), chunk);
  }
  return Buffer.concat(parts);
}

export class SimDns {
  /** The last MAX_KEPT_QUERIES queries answered, as `<type> <name>` (tests check what the relay asked). */
  readonly queries: string[] = [];

  private constructor(
    private readonly socket: Socket,
    private readonly opts: SimDnsOptions,
  ) {}

  /** Starts a server on 127.0.0.1 (a free port). It does not keep the process alive. */
  static async start(opts: SimDnsOptions = {}): Promise<SimDns> {
    const socket = createSocket('udp4');
    const dns = new SimDns(socket, opts);
    socket.on('message', (msg, rinfo) => {
      const reply = dns.answer(msg);
      if (reply) socket.send(reply, rinfo.port, rinfo.address);
    });
    socket.on('error', () => {}); // a send to a vanished client: nothing to do
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    socket.unref();
    return dns;
  }

  /** `127.0.0.1:<port>`, the value for RELAY_DNS_SERVERS. */
  get server(): string {
    return `127.0.0.1:${this.socket.address().port}`;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }

  /** The records of `type` for `name`, or undefined when the name does not exist at all. */
  private records(name: string, type: number): Buffer[] | undefined {
    let exists = false;
    const out: Buffer[] = [];
    if (name.startsWith('_atproto.')) {
      const did = this.opts.resolveHandle?.(name.slice('_atproto.'.length));
      if (did) {
        exists = true;
        if (type === TYPE_TXT) out.push(txtBytes(`did=${did}`));
      }
    }
    const addresses = this.opts.hosts?.get(name);
    if (addresses) {
      exists = true;
      for (const a of addresses) {
        const bytes = addressBytes(a);
        if (bytes && ((type === TYPE_A && bytes.length === 4) || (type === TYPE_AAAA && bytes.length === 16)))
          out.push(bytes);
      }
    }
    return exists ? out : undefined;
  }

  /** The reply to one datagram, or undefined for one too short to answer or not a query. */
  private answer(msg: Buffer): Buffer | undefined {
    // too short to answer, or a response (answering one could start a loop between two servers)
    if (msg.length < 4 || msg.readUInt16BE(2) & 0x8000) return undefined;
    const q = readQuestion(msg);
    const header = Buffer.alloc(12);
    msg.copy(header, 0, 0, 2); // id
    const rd = msg.readUInt16BE(2) & 0x0100;
    if (typeof q === 'number') {
      header.writeUInt16BE(0x8000 | 0x0080 | rd | q, 2);
      return header;
    }
    if (this.queries.length >= MAX_KEPT_QUERIES)
      this.queries.splice(0, this.queries.length - MAX_KEPT_QUERIES + 1);
    this.queries.push(
      `${q.type === TYPE_TXT ? 'TXT' : q.type === TYPE_A ? 'A' : q.type === TYPE_AAAA ? 'AAAA' : q.type} ${q.name}`,
    );
    const records = this.records(q.name, q.type);
    header.writeUInt16BE(0x8000 | 0x0400 | rd | 0x0080 | (records ? RCODE_OK : RCODE_NXDOMAIN), 2);
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(records?.length ?? 0, 6);
    const parts: Buffer[] = [header, msg.subarray(12, q.end)];
    for (const data of records ?? []) {
      const rr = Buffer.alloc(12);
      rr.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
      rr.writeUInt16BE(q.type, 2);
      rr.writeUInt16BE(CLASS_IN, 4);
      rr.writeUInt32BE(TTL_SECONDS, 6);
      rr.writeUInt16BE(data.length, 10);
      parts.push(rr, data);
    }
    return Buffer.concat(parts);
  }
}
