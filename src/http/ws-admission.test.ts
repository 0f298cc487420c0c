// WsAdmission on its own: the refusals (status, error name, metric label),
// what counts against the limits (handshakes included, per IPv4 address or
// IPv6 /64), and when a slot is freed. The servers' tests cover it over real
// sockets (src/firehose/server.test.ts, src/jetstream/server.test.ts).
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { describe, it } from 'node:test';
import { Counter, Registry } from 'prom-client';
import { WsAdmission, type WsAdmissionOptions } from './ws-admission.ts';

/** Just what a refusal and a held slot use of a socket: end(answer) and the `close` event. */
class FakeSocket extends EventEmitter {
  answer = '';
  end(text: string): void {
    this.answer = text;
  }
  get duplex(): Duplex {
    return this as unknown as Duplex;
  }
}

function admission(opts: Partial<WsAdmissionOptions> = {}): { a: WsAdmission; rejected: Counter<'reason'> } {
  const rejected = new Counter({
    name: 'test_rejected_total',
    help: 'refused',
    labelNames: ['reason'],
    registers: [new Registry()],
  });
  const a = new WsAdmission({
    maxConnections: 3,
    maxPerClient: 2,
    totalLimit: { reason: 'max_things', message: 'the relay has reached its thing limit' },
    perClientMessage: 'too many things from this address or IPv6 /64',
    rejected,
    ...opts,
  });
  return { a, rejected };
}

async function count(rejected: Counter<'reason'>, reason: string): Promise<number> {
  const values = (await rejected.get()).values;
  return values.find((v) => v.labels.reason === reason)?.value ?? 0;
}

describe('WsAdmission', () => {
  it('refuses everything once closed, 503 ServiceUnavailable, not counted as a rejection', async () => {
    const { a, rejected } = admission();
    assert.equal(a.closed, false);
    a.close();
    assert.equal(a.closed, true);
    const s = new FakeSocket();
    assert.equal(a.check(s.duplex, '192.0.2.1'), false);
    assert.match(s.answer, /^HTTP\/1\.1 503 Service Unavailable\r\n/);
    assert.match(s.answer, /"error":"ServiceUnavailable","message":"relay is shutting down"/);
    assert.equal((await rejected.get()).values.length, 0);
  });

  it('counts handshakes in flight and admitted connections against the total: 503 TooManyConsumers', async () => {
    const { a, rejected } = admission();
    const admitted = a.hold(new FakeSocket().duplex, '192.0.2.1');
    admitted();
    a.hold(new FakeSocket().duplex, '192.0.2.2'); // still in its handshake
    a.hold(new FakeSocket().duplex, '192.0.2.3');
    const s = new FakeSocket();
    assert.equal(a.check(s.duplex, '192.0.2.4'), false);
    assert.match(s.answer, /^HTTP\/1\.1 503 /);
    assert.match(s.answer, /"error":"TooManyConsumers","message":"the relay has reached its thing limit"/);
    assert.equal(await count(rejected, 'max_things'), 1);
    a.release('192.0.2.1');
    assert.equal(a.check(new FakeSocket().duplex, '192.0.2.4'), true);
  });

  it('counts per client network (IPv4 address, IPv6 /64): 429 RateLimitExceeded, reason per_ip', async () => {
    const { a, rejected } = admission({ maxConnections: 100 });
    a.hold(new FakeSocket().duplex, '2001:db8:1:2::1')();
    a.hold(new FakeSocket().duplex, '2001:db8:1:2:ffff::9');
    const s = new FakeSocket();
    assert.equal(a.check(s.duplex, '2001:db8:1:2::77'), false, 'same /64');
    assert.match(s.answer, /^HTTP\/1\.1 429 /);
    assert.match(
      s.answer,
      /"error":"RateLimitExceeded","message":"too many things from this address or IPv6 \/64"/,
    );
    assert.equal(await count(rejected, 'per_ip'), 1);
    assert.equal(a.check(new FakeSocket().duplex, '2001:db8:1:3::1'), true, 'another /64');
    a.hold(new FakeSocket().duplex, '192.0.2.1');
    a.hold(new FakeSocket().duplex, '::ffff:192.0.2.1');
    assert.equal(a.check(new FakeSocket().duplex, '192.0.2.1'), false, 'IPv4-mapped counts as IPv4');
    assert.equal(a.check(new FakeSocket().duplex, '192.0.2.2'), true, 'another IPv4 address');
  });

  it('frees a slot when the socket closes during the handshake, not after it completed', () => {
    const { a } = admission({ maxConnections: 100, maxPerClient: 1 });
    const first = new FakeSocket();
    a.hold(first.duplex, '192.0.2.1');
    assert.equal(a.check(new FakeSocket().duplex, '192.0.2.1'), false);
    first.emit('close');
    assert.equal(a.check(new FakeSocket().duplex, '192.0.2.1'), true, 'freed by the close');

    const second = new FakeSocket();
    a.hold(second.duplex, '192.0.2.1')();
    second.emit('close');
    assert.equal(a.check(new FakeSocket().duplex, '192.0.2.1'), false, 'the connection keeps its slot');
    a.release('192.0.2.1');
    assert.equal(a.check(new FakeSocket().duplex, '192.0.2.1'), true, 'freed by release');
  });

  it('works without a counter', () => {
    const a = new WsAdmission({
      maxConnections: 0,
      maxPerClient: 1,
      totalLimit: { reason: 'max_things', message: 'full' },
      perClientMessage: 'too many',
    });
    const s = new FakeSocket();
    assert.equal(a.check(s.duplex, '192.0.2.1'), false);
    assert.match(s.answer, /^HTTP\/1\.1 503 /);
  });
});
