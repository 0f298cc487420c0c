// The route-running rules every router shares (dispatch.ts), through a real
// node:http server on loopback: JSON results, routes that answer themselves
// (a non-JSON stream), lexicon errors, 405 with Allow, unexpected errors as a
// bare 500 reported to the caller, a connection closed when its body was not
// read, and paths the router does not know handed on.
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createRouteHandler } from './dispatch.ts';
import { ApiError, SERVER_HEADER } from './response.ts';
import { Router } from './router.ts';

describe('createRouteHandler', () => {
  let server: Server;
  let base: string;
  const unexpected: unknown[] = [];

  before(async () => {
    const router = new Router()
      .get('/json', async ({ query }) => ({ hello: query.optional('name') ?? 'world' }))
      .get('/events', async ({ res }) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('data: 1\n\n');
        res.end('data: 2\n\n');
        return undefined;
      })
      .get('/teapot', async () => {
        throw new ApiError(418, 'Teapot', 'short and stout', { 'x-extra': 'yes' });
      })
      .get('/broken', async () => {
        throw new Error('secret detail');
      })
      .get('/half', async ({ res }) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('partial');
        throw new Error('after the answer started');
      })
      .post('/refuse-unread', async () => {
        throw new ApiError(400, 'InvalidRequest', 'not reading that');
      });
    const handle = createRouteHandler(router, { onUnexpected: (err) => unexpected.push(err) });
    server = createServer((req, res) => {
      void handle(req, res).then((handled) => {
        if (!handled) res.writeHead(418).end('not mine');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('answers a returned body as 200 JSON with the server header; HEAD as GET', async () => {
    const res = await fetch(`${base}/json?name=relay`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/json; charset=utf-8');
    assert.equal(res.headers.get('server'), SERVER_HEADER);
    assert.deepEqual(await res.json(), { hello: 'relay' });
    assert.equal((await fetch(`${base}/json`, { method: 'HEAD' })).status, 200);
  });

  it('lets a route write its own (streamed, non-JSON) answer', async () => {
    const res = await fetch(`${base}/events`);
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    assert.equal(await res.text(), 'data: 1\n\ndata: 2\n\n');
  });

  it('answers ApiError, bad parameters and wrong methods in the lexicon shape', async () => {
    const teapot = await fetch(`${base}/teapot`);
    assert.equal(teapot.status, 418);
    assert.equal(teapot.headers.get('x-extra'), 'yes');
    assert.deepEqual(await teapot.json(), { error: 'Teapot', message: 'short and stout' });
    const twice = await fetch(`${base}/json?name=a&name=b`);
    assert.equal(twice.status, 400);
    assert.equal(((await twice.json()) as { error: string }).error, 'InvalidRequest');
    const post = await fetch(`${base}/json`, { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET');
  });

  it('answers other errors with a bare 500 and reports them; cuts an answer already started', async () => {
    const res = await fetch(`${base}/broken`);
    assert.equal(res.status, 500);
    assert.deepEqual(await res.json(), { error: 'InternalServerError', message: 'internal error' });
    assert.match(String(unexpected.at(-1)), /secret detail/);
    await assert.rejects(async () => (await fetch(`${base}/half`)).text());
    assert.match(String(unexpected.at(-1)), /after the answer started/);
  });

  it('closes the connection when it answered before reading the body', async () => {
    const { status, connection } = await new Promise<{ status?: number; connection?: string }>(
      (resolve, reject) => {
        const req = request(`${base}/refuse-unread`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'content-length': '100000' },
        });
        req.on('response', (res) => {
          res.resume();
          resolve({ status: res.statusCode, connection: res.headers.connection });
          req.destroy();
        });
        req.on('error', reject);
        req.write('{"a":');
      },
    );
    assert.equal(status, 400);
    assert.equal(connection, 'close');
  });

  it('hands on paths it does not know', async () => {
    const res = await fetch(`${base}/elsewhere`);
    assert.equal(res.status, 418);
    assert.equal(await res.text(), 'not mine');
  });
});
