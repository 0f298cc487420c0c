// An in-memory PLC directory for the simulated network. It serves DID
// documents over HTTP on loopback (`GET /:did`, like plc.directory) so the
// relay under test resolves identities exactly as it would in production,
// while the simulator edits documents in-process (handle changes, key
// rotation, migration between hosts, tombstones) without any PLC operation
// log or signatures: the relay only ever reads the resolved documents.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Prng } from './prng.ts';

export interface PlcEntry {
  did: string;
  handle: string;
  /** publicKeyMultibase of the #atproto verification method (multikey, `z…`) */
  signingKey: string;
  /** PDS endpoint, e.g. http://127.0.0.1:PORT */
  pds: string;
  tombstoned: boolean;
}

export interface DidDocument {
  '@context': string[];
  id: string;
  alsoKnownAs: string[];
  verificationMethod: { id: string; type: string; controller: string; publicKeyMultibase: string }[];
  service: { id: string; type: string; serviceEndpoint: string }[];
}

const B32 = 'abcdefghijklmnopqrstuvwxyz234567';

export function didDocumentFor(e: PlcEntry): DidDocument {
  return {
    '@context': [
      'https://www.w3.org/ns/did/v1',
      'https://w3id.org/security/multikey/v1',
      'https://w3id.org/security/suites/secp256k1-2019/v1',
    ],
    id: e.did,
    alsoKnownAs: [`at://${e.handle}`],
    verificationMethod: [
      { id: `${e.did}#atproto`, type: 'Multikey', controller: e.did, publicKeyMultibase: e.signingKey },
    ],
    service: [{ id: '#atproto_pds', type: 'AtprotoPersonalDataServer', serviceEndpoint: e.pds }],
  };
}

export class SimPlc {
  readonly entries = new Map<string, PlcEntry>();
  private readonly handles = new Map<string, string>();
  private readonly prng: Prng;
  private server: Server | null = null;
  private port = 0;
  /** how many GET requests the directory has answered (tests use it to check caching) */
  requests = 0;
  /** An outage: while set, every request is answered with this HTTP status (e.g. 503, 429). */
  outage: number | undefined;

  constructor(seed: number | string = 'plc') {
    this.prng = new Prng(`plc:${seed}`);
  }

  static async start(seed?: number | string): Promise<SimPlc> {
    const plc = new SimPlc(seed);
    await plc.listen();
    return plc;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async listen(): Promise<void> {
    const server = createServer((req, res) => this.handle(req, res));
    server.keepAliveTimeout = 1000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** A fresh did:plc identifier (24 base32 characters, seeded). */
  newDid(): string {
    let id = '';
    for (let i = 0; i < 24; i++) id += B32[this.prng.int(32)];
    return `did:plc:${id}`;
  }

  create(entry: Omit<PlcEntry, 'did' | 'tombstoned'> & { did?: string }): PlcEntry {
    const did = entry.did ?? this.newDid();
    if (this.entries.has(did)) throw new Error(`DID already registered: ${did}`);
    const e: PlcEntry = {
      did,
      handle: entry.handle,
      signingKey: entry.signingKey,
      pds: entry.pds,
      tombstoned: false,
    };
    this.entries.set(did, e);
    this.handles.set(e.handle, did);
    return e;
  }

  /** Changes fields of a document (handle, signing key, PDS endpoint). */
  update(did: string, patch: Partial<Pick<PlcEntry, 'handle' | 'signingKey' | 'pds'>>): PlcEntry {
    const e = this.entries.get(did);
    if (!e) throw new Error(`unknown DID: ${did}`);
    if (patch.handle !== undefined && patch.handle !== e.handle) {
      if (this.handles.get(e.handle) === did) this.handles.delete(e.handle);
      e.handle = patch.handle;
      this.handles.set(e.handle, did);
    }
    if (patch.signingKey !== undefined) e.signingKey = patch.signingKey;
    if (patch.pds !== undefined) e.pds = patch.pds;
    return e;
  }

  tombstone(did: string): void {
    const e = this.entries.get(did);
    if (!e) throw new Error(`unknown DID: ${did}`);
    e.tombstoned = true;
    if (this.handles.get(e.handle) === did) this.handles.delete(e.handle);
  }

  get(did: string): PlcEntry | undefined {
    return this.entries.get(did);
  }

  document(did: string): DidDocument | null {
    const e = this.entries.get(did);
    return e && !e.tombstoned ? didDocumentFor(e) : null;
  }

  /** handle → DID, as DNS TXT / .well-known resolution would answer; null when unknown. */
  resolveHandle(handle: string): string | null {
    return this.handles.get(handle.toLowerCase()) ?? null;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    this.requests++;
    if (this.outage !== undefined) {
      send(res, this.outage, { message: 'directory unavailable (simulated outage)' });
      return;
    }
    const path = decodeURIComponent((req.url ?? '/').split('?')[0]);
    if (req.method !== 'GET') {
      send(res, 405, { message: 'method not allowed' });
      return;
    }
    const m = /^\/(did:plc:[a-z2-7]{24})(\/data)?$/.exec(path);
    if (!m) {
      send(res, 404, { message: 'not found' });
      return;
    }
    const e = this.entries.get(m[1]);
    if (!e) {
      send(res, 404, { message: `DID not registered: ${m[1]}` });
      return;
    }
    if (e.tombstoned) {
      send(res, 410, { message: `DID not available: ${m[1]}` });
      return;
    }
    if (m[2]) {
      send(res, 200, {
        did: e.did,
        verificationMethods: { atproto: `did:key:${e.signingKey}` },
        rotationKeys: [],
        alsoKnownAs: [`at://${e.handle}`],
        services: { atproto_pds: { type: 'AtprotoPersonalDataServer', endpoint: e.pds } },
      });
      return;
    }
    send(res, 200, didDocumentFor(e));
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': status === 200 ? 'application/did+ld+json' : 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/**
 * A handle resolver backed by the simulated directory, for the relay's
 * injectable resolver in tests (no DNS, no HTTP).
 */
export function simHandleResolver(plc: SimPlc): (handle: string) => Promise<string | null> {
  return async (handle) => plc.resolveHandle(handle);
}
