// One firehose reader's view of a stream, for the exactly-once tests that
// compare what hosts emitted with what a relay delivered: every frame's seq
// in order (each must be above the last), each #commit's delivery count by
// CID with where it was seen, and every problem (an undecodable or error
// frame, a seq that did not increase) as a readable line.
import WebSocket from 'ws';
import { cidToString } from '../../src/protocol/cid.ts';
import { decodeFrame } from '../../src/protocol/frames.ts';

export class StreamRecord {
  readonly seqs: number[] = [];
  readonly commits = new Map<string, number>();
  readonly where = new Map<string, string>();
  readonly problems: string[] = [];
  lastSeq = 0;
  constructor(readonly label: string) {}

  /** Event frames taken (error and undecodable frames are problems, not counted). */
  get frames(): number {
    return this.seqs.length;
  }

  take(data: Uint8Array): void {
    let f: ReturnType<typeof decodeFrame>;
    try {
      f = decodeFrame(data);
    } catch (err) {
      this.problems.push(`${this.label}: undecodable frame: ${(err as Error).message}`);
      return;
    }
    if (f.header.op !== 1) {
      this.problems.push(`${this.label}: error frame ${JSON.stringify(f.body).slice(0, 200)}`);
      return;
    }
    const seq = f.body.seq as number;
    if (!(seq > this.lastSeq)) this.problems.push(`${this.label}: seq ${seq} after ${this.lastSeq}`);
    this.lastSeq = seq;
    this.seqs.push(seq);
    if (f.header.t !== '#commit') return;
    const cid = cidToString(f.body.commit as never);
    this.commits.set(cid, (this.commits.get(cid) ?? 0) + 1);
    this.where.set(cid, `${f.body.repo} rev ${f.body.rev} (${this.label} seq ${seq})`);
  }
}

/** Subscribes to a firehose URL and feeds every message to `record`; socket errors are the caller's to notice (a closed socket). */
export function followStream(url: string, record: StreamRecord): WebSocket {
  const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 16 * 1024 * 1024 });
  ws.on('message', (data: Buffer) => record.take(new Uint8Array(data.buffer, data.byteOffset, data.length)));
  ws.on('error', () => {});
  return ws;
}
