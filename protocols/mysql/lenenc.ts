/**
 * Length-encoded integers/strings and a bounds-checked payload reader/writer.
 * Every read checks the remaining bytes first and throws MysqlDecodeError, so a
 * hostile length can neither read past the buffer nor allocate.
 */
import { MysqlDecodeError } from './errors';

/** Result of a positional read: the value and the offset just after it. */
export interface Read<T> {
  value: T;
  next: number;
}

function need(buf: Buffer, offset: number, n: number, what: string): void {
  if (offset < 0 || n < 0 || offset + n > buf.length) {
    throw new MysqlDecodeError(
      'truncated',
      what,
      `needs ${n} byte(s) at offset ${offset} but the payload has ${Math.max(0, buf.length - offset)} left`,
    );
  }
}

/**
 * Reads a length-encoded integer. 0xfb (NULL) and 0xff (ERR) are not integers and
 * are rejected; callers that allow NULL check for 0xfb first.
 */
export function readLenencInt(buf: Buffer, offset: number, what = 'length-encoded integer'): Read<bigint> {
  need(buf, offset, 1, what);
  const first = buf[offset];
  if (first < 0xfb) return { value: BigInt(first), next: offset + 1 };
  switch (first) {
    case 0xfc:
      need(buf, offset + 1, 2, what);
      return { value: BigInt(buf.readUInt16LE(offset + 1)), next: offset + 3 };
    case 0xfd:
      need(buf, offset + 1, 3, what);
      return { value: BigInt(buf.readUIntLE(offset + 1, 3)), next: offset + 4 };
    case 0xfe:
      need(buf, offset + 1, 8, what);
      return { value: buf.readBigUInt64LE(offset + 1), next: offset + 9 };
    default:
      throw new MysqlDecodeError('malformed', what, `0x${first.toString(16)} does not start a length-encoded integer`);
  }
}

/** Reads a length-encoded integer that must fit in `max` (a safe JS number). */
export function readLenencNumber(buf: Buffer, offset: number, max: number, what: string): Read<number> {
  const r = readLenencInt(buf, offset, what);
  if (r.value > BigInt(max)) {
    throw new MysqlDecodeError('too_long', what, `value ${r.value} exceeds the limit of ${max}`, Number(r.value));
  }
  return { value: Number(r.value), next: r.next };
}

/** Reads a length-encoded byte string (no copy: a view into `buf`). */
export function readLenencBytes(buf: Buffer, offset: number, what = 'length-encoded string', max = buf.length): Read<Buffer> {
  const len = readLenencNumber(buf, offset, Math.min(max, Number.MAX_SAFE_INTEGER), what);
  need(buf, len.next, len.value, what);
  return { value: buf.subarray(len.next, len.next + len.value), next: len.next + len.value };
}

export function readLenencString(buf: Buffer, offset: number, what = 'length-encoded string', max = buf.length): Read<string> {
  const r = readLenencBytes(buf, offset, what, max);
  return { value: r.value.toString('utf8'), next: r.next };
}

/** Bytes needed to encode `n` as a length-encoded integer. */
export function lenencIntLength(n: bigint | number): number {
  const v = BigInt(n);
  if (v < 0n) throw new RangeError('length-encoded integers are unsigned');
  if (v < 0xfbn) return 1;
  if (v <= 0xffffn) return 3;
  if (v <= 0xffffffn) return 4;
  if (v <= 0xffffffffffffffffn) return 9;
  throw new RangeError('value does not fit in 64 bits');
}

/** Encodes `n` as a length-encoded integer. Throws RangeError on programmer error (negative, > 2^64-1). */
export function writeLenencInt(n: bigint | number): Buffer {
  const v = BigInt(n);
  const len = lenencIntLength(v);
  const out = Buffer.alloc(len);
  if (len === 1) out[0] = Number(v);
  else if (len === 3) {
    out[0] = 0xfc;
    out.writeUInt16LE(Number(v), 1);
  } else if (len === 4) {
    out[0] = 0xfd;
    out.writeUIntLE(Number(v), 1, 3);
  } else {
    out[0] = 0xfe;
    out.writeBigUInt64LE(v, 1);
  }
  return out;
}

export function writeLenencBytes(b: Buffer): Buffer {
  return Buffer.concat([writeLenencInt(b.length), b]);
}

export function writeLenencString(s: string): Buffer {
  return writeLenencBytes(Buffer.from(s, 'utf8'));
}

/** Sequential, bounds-checked reader over one payload. */
export class PayloadReader {
  offset: number;
  constructor(
    readonly buf: Buffer,
    /** Packet name for error messages, e.g. "HandshakeResponse41". */
    readonly packet: string,
    offset = 0,
  ) {
    this.offset = offset;
  }

  get remaining(): number {
    return Math.max(0, this.buf.length - this.offset);
  }

  get atEnd(): boolean {
    return this.offset >= this.buf.length;
  }

  private what(field: string): string {
    return `${this.packet} ${field}`;
  }

  u8(field: string): number {
    need(this.buf, this.offset, 1, this.what(field));
    return this.buf[this.offset++];
  }

  u16(field: string): number {
    need(this.buf, this.offset, 2, this.what(field));
    const v = this.buf.readUInt16LE(this.offset);
    this.offset += 2;
    return v;
  }

  u24(field: string): number {
    need(this.buf, this.offset, 3, this.what(field));
    const v = this.buf.readUIntLE(this.offset, 3);
    this.offset += 3;
    return v;
  }

  u32(field: string): number {
    need(this.buf, this.offset, 4, this.what(field));
    const v = this.buf.readUInt32LE(this.offset);
    this.offset += 4;
    return v;
  }

  bytes(n: number, field: string): Buffer {
    need(this.buf, this.offset, n, this.what(field));
    const v = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return v;
  }

  skip(n: number, field: string): void {
    need(this.buf, this.offset, n, this.what(field));
    this.offset += n;
  }

  /** The rest of the payload (no copy). */
  rest(): Buffer {
    const v = this.buf.subarray(Math.min(this.offset, this.buf.length));
    this.offset = this.buf.length;
    return v;
  }

  /**
   * A NUL-terminated string of at most `max` bytes. With `allowUnterminated`, the
   * end of the payload also ends the string (clients and servers that omit the
   * final NUL of the last field).
   */
  nulBytes(field: string, max: number, allowUnterminated = false): Buffer {
    const start = Math.min(this.offset, this.buf.length);
    const end = this.buf.indexOf(0, start);
    const length = (end === -1 ? this.buf.length : end) - start;
    if (length > max) {
      throw new MysqlDecodeError('too_long', this.what(field), `longer than the limit of ${max} bytes`, length);
    }
    if (end === -1) {
      if (!allowUnterminated) {
        throw new MysqlDecodeError('truncated', this.what(field), 'the NUL terminator is missing');
      }
      return this.rest();
    }
    this.offset = end + 1;
    return this.buf.subarray(start, end);
  }

  nulString(field: string, max: number, allowUnterminated = false): string {
    return this.nulBytes(field, max, allowUnterminated).toString('utf8');
  }

  lenencInt(field: string): bigint {
    const r = readLenencInt(this.buf, this.offset, this.what(field));
    this.offset = r.next;
    return r.value;
  }

  lenencNumber(field: string, max: number): number {
    const r = readLenencNumber(this.buf, this.offset, max, this.what(field));
    this.offset = r.next;
    return r.value;
  }

  lenencBytes(field: string, max = this.buf.length): Buffer {
    const r = readLenencBytes(this.buf, this.offset, this.what(field), max);
    this.offset = r.next;
    return r.value;
  }

  lenencString(field: string, max = this.buf.length): string {
    return this.lenencBytes(field, max).toString('utf8');
  }
}
