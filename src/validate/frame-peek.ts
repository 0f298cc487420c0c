// Reads the account DID of an event frame (`repo` of #commit, `did` of the
// other types) without decoding the frame. The main thread needs the DID of
// every event before anything else (it picks the repo's queue and the signing
// key to send to a worker with the frame), but a full decode of a 3 KB commit
// is exactly the CPU work the worker pool exists to take off the main thread.
// So this walks the CBOR structure, skipping values without building them, and
// decodes only the one text string it is after. A frame this cannot read gets
// undefined; the worker's full decode then says precisely what is wrong.

const TEXT_DECODER = new TextDecoder('utf-8', { fatal: true });

class Truncated extends Error {}

// Position-carrying reader over one frame; every read is bounds-checked.
class Cursor {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}

  /** Reads a head; returns [major, argument]. Indefinite lengths are refused (not DAG-CBOR). */
  head(): [number, number] {
    const b = this.buf;
    if (this.pos >= b.length) throw new Truncated();
    const initial = b[this.pos++];
    const major = initial >> 5;
    const info = initial & 0x1f;
    if (info < 24) return [major, info];
    const n = info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : info === 27 ? 8 : 0;
    if (n === 0 || this.pos + n > b.length) throw new Truncated();
    let v = 0;
    for (let i = 0; i < n; i++) v = v * 256 + b[this.pos + i];
    this.pos += n;
    return [major, v];
  }

  skip(): void {
    let remaining = 1;
    while (remaining > 0) {
      remaining--;
      const [major, arg] = this.head();
      if (major === 2 || major === 3) {
        if (arg > this.buf.length - this.pos) throw new Truncated();
        this.pos += arg;
      } else if (major === 4) remaining += arg;
      else if (major === 5) remaining += arg * 2;
      else if (major === 6) remaining += 1;
    }
  }

  text(len: number): string {
    if (len > this.buf.length - this.pos) throw new Truncated();
    const s = TEXT_DECODER.decode(this.buf.subarray(this.pos, this.pos + len));
    this.pos += len;
    return s;
  }
}

/** The DID the event is about, or undefined when the frame cannot be read that far. */
export function peekEventDid(frame: Uint8Array, type: string): string | undefined {
  const field = type === '#commit' ? 'repo' : 'did';
  try {
    const c = new Cursor(frame);
    c.skip(); // header
    const [major, entries] = c.head();
    if (major !== 5) return undefined;
    for (let i = 0; i < entries; i++) {
      const [km, klen] = c.head();
      if (km !== 3) return undefined;
      const key = c.text(klen);
      if (key === field) {
        const [vm, vlen] = c.head();
        if (vm !== 3) return undefined;
        const did = c.text(vlen);
        return did.startsWith('did:') ? did : undefined;
      }
      c.skip();
    }
    return undefined;
  } catch {
    return undefined;
  }
}
