// The logger: level specs with per-module overrides, JSON lines off a
// terminal, readable lines on one (RELAY_LOG_FORMAT / a TTY destination).
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger, formatPrettyLine, parseLogLevels } from './log.ts';

function sink(isTTY = false): { stream: Writable & { isTTY?: boolean }; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  }) as Writable & { isTTY?: boolean };
  stream.isTTY = isTTY;
  return { stream, text: () => chunks.join('') };
}

describe('log', () => {
  it('parses a default level and per-module overrides', () => {
    const spec = parseLogLevels('warn, ingest=debug,firehose=error');
    assert.equal(spec.base, 'warn');
    assert.deepEqual(
      [...spec.modules],
      [
        ['ingest', 'debug'],
        ['firehose', 'error'],
      ],
    );
    assert.equal(parseLogLevels('ingest=trace').base, 'info');
    assert.equal(parseLogLevels('INFO').base, 'info');
    for (const bad of ['loud', 'info,debug', 'ingest=loud', 'in gest=debug', `${'a,'.repeat(70)}`]) {
      assert.throws(() => parseLogLevels(bad), Error, bad);
    }
  });

  it('applies a module level to its children, louder or quieter than the default', () => {
    const out = sink();
    const log = createLogger('info,ingest=debug,firehose=error', { destination: out.stream });
    log.debug('root debug: dropped');
    log.info('root info: kept');
    const ingest = log.child({ module: 'ingest' });
    ingest.debug('ingest debug: kept');
    ingest.child({ host: 'pds.example' }).debug('grandchild debug: kept');
    log.child({ module: 'firehose' }).warn('firehose warn: dropped');
    log.child({ module: 'validate' }).debug('validate debug: dropped');
    const msgs = out
      .text()
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { msg: string }).msg);
    assert.deepEqual(msgs, ['root info: kept', 'ingest debug: kept', 'grandchild debug: kept']);
  });

  it('writes JSON lines off a terminal and readable lines on one', () => {
    const pipe = sink(false);
    createLogger('info', { destination: pipe.stream })
      .child({ module: 'ingest' })
      .info({ host: 'pds.example' }, 'hello');
    const rec = JSON.parse(pipe.text()) as Record<string, unknown>;
    assert.equal(rec.msg, 'hello');
    assert.equal(rec.module, 'ingest');
    assert.equal(rec.host, 'pds.example');

    const tty = sink(true);
    createLogger('info', { destination: tty.stream, colors: false })
      .child({ module: 'ingest' })
      .warn({ host: 'pds.example', n: 3, note: 'two words' }, 'hello');
    assert.match(
      tty.text(),
      /^\d\d:\d\d:\d\d\.\d{3} WARN {2}\[ingest\] hello host=pds\.example n=3 note="two words"\n$/,
    );

    const forced = sink(false);
    createLogger('info', { destination: forced.stream, format: 'pretty', colors: false }).info('x');
    assert.match(forced.text(), /INFO {2}x\n$/);
  });

  it('pretty-prints an error with its stack and passes a non-JSON line through', () => {
    const err = new Error('boom');
    const line = formatPrettyLine(
      JSON.stringify({ level: 50, time: 0, msg: 'failed', err: { message: err.message, stack: err.stack } }),
      false,
    );
    assert.match(line, /^00:00:00\.000 ERROR failed err="boom"\nError: boom\n/);
    assert.equal(formatPrettyLine('not json', false), 'not json');
  });
});
