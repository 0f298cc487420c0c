// Loopback HTTP servers for the identity tests: a generic one that runs a
// handler, and a PLC-directory-like one that serves DID documents from a map
// (404 for unknown DIDs, 410 for tombstoned ones) and counts requests, so the
// resolver and cache can be tested without the real network. Every server
// listens on 127.0.0.1 port 0 and `close()` drops open connections too.
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';

export interface TestServer {
  port: number;
  /** `http://127.0.0.1:<port>` */
  url: string;
  requests: http.IncomingMessage[];
  close(): Promise<void>;
}

export async function startTestServer(
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void,
): Promise<TestServer> {
  const requests: http.IncomingMessage[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req);
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// A self-signed P-256 certificate for `pds.test` (valid 2000-2100), for
// tests that need TLS: hand TEST_TLS_CERT to the fetcher as its `ca`.
export const TEST_TLS_CERT = `-----BEGIN CERTIFICATE-----
MIIBVzCB/qADAgECAgEBMAoGCCqGSM49BAMCMBMxETAPBgNVBAMMCHBkcy50ZXN0
MCAXDTAwMDEwMTAwMDAwMFoYDzIxMDAwMTAxMDAwMDAwWjATMREwDwYDVQQDDAhw
ZHMudGVzdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABJONiODZW8j1u1y9tLTq
alNe21NczzIVdh4KSZf+sHlB6iRnTU/B6ErE2zCzwupJzUlv4r5gtS8eTrp02XHp
V1GjQTA/MBMGA1UdEQQMMAqCCHBkcy50ZXN0MAkGA1UdEwQCMAAwHQYDVR0OBBYE
FH56umhDxJNFQaSrvf4/ni2jhw8xMAoGCCqGSM49BAMCA0gAMEUCIQCXETeYHspQ
H54UlmPwzeLoQ1MQFPigayK7+JBEZBnn1wIgWLqhFUIptWBEQhSQBnmMTpy6MahG
lgW9V0Lfm5+e0sk=
-----END CERTIFICATE-----
`;
const TEST_TLS_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgEr/RgsGCi111WqjI
l/PhId7kQHmAdEh8C52aLrt+0iShRANCAASTjYjg2VvI9btcvbS06mpTXttTXM8y
FXYeCkmX/rB5QeokZ01PwehKxNsws8LqSc1Jb+K+YLUvHk66dNlx6VdR
-----END PRIVATE KEY-----
`;

/** An HTTPS server on 127.0.0.1 whose certificate is for `pds.test`; records each request's SNI name. */
export async function startTestTlsServer(
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void,
): Promise<TestServer & { serverNames: Array<string | false | null> }> {
  const requests: http.IncomingMessage[] = [];
  const serverNames: Array<string | false | null> = [];
  const server = https.createServer({ cert: TEST_TLS_CERT, key: TEST_TLS_KEY }, (req, res) => {
    requests.push(req);
    serverNames.push((req.socket as TLSSocket).servername);
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    url: `https://127.0.0.1:${port}`,
    requests,
    serverNames,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface TestPlcServer extends TestServer {
  docs: Map<string, unknown>;
  tombstoned: Set<string>;
  /** Requests per DID path. */
  hits: Map<string, number>;
  /** Milliseconds to wait before answering (for concurrency tests). */
  delayMs: number;
}

export async function startTestPlc(): Promise<TestPlcServer> {
  const docs = new Map<string, unknown>();
  const tombstoned = new Set<string>();
  const hits = new Map<string, number>();
  let plc: TestPlcServer | undefined;
  const base = await startTestServer((req, res) => {
    const did = decodeURIComponent((req.url ?? '/').slice(1));
    hits.set(did, (hits.get(did) ?? 0) + 1);
    const answer = (): void => {
      if (tombstoned.has(did)) {
        res.writeHead(410, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ message: `DID not available: ${did}` }));
        return;
      }
      const doc = docs.get(did);
      if (doc === undefined) {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ message: `DID not registered: ${did}` }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/did+ld+json' });
      res.end(JSON.stringify(doc));
    };
    const delayMs = plc?.delayMs ?? 0;
    if (delayMs > 0) setTimeout(answer, delayMs);
    else answer();
  });
  plc = Object.assign(base, { docs, tombstoned, hits, delayMs: 0 });
  return plc;
}

/** A minimal valid atproto DID document. */
export function makeDidDocument(
  did: string,
  opts: { handle?: string; pds?: string; multikey?: string } = {},
): Record<string, unknown> {
  return {
    '@context': ['https://www.w3.org/ns/did/v1', 'https://w3id.org/security/multikey/v1'],
    id: did,
    alsoKnownAs: opts.handle ? [`at://${opts.handle}`] : [],
    verificationMethod: opts.multikey
      ? [{ id: `${did}#atproto`, type: 'Multikey', controller: did, publicKeyMultibase: opts.multikey }]
      : [],
    service: opts.pds
      ? [{ id: '#atproto_pds', type: 'AtprotoPersonalDataServer', serviceEndpoint: opts.pds }]
      : [],
  };
}
