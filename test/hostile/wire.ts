/**
 * Raw-socket tools for the hostile-input suite: a connection that records every byte the
 * gateway sends and when it closed, PostgreSQL and MySQL messages built by hand, and the
 * replies decoded into the protocol's own error (SQLSTATE / MySQL code).
 */
import net from 'node:net';
import { decodeErrorFields } from '../../protocols/postgres';
import { decodeErr, encodePacket } from '../../protocols/mysql';

/** A client socket that keeps everything it received. */
export class RawConn {
  readonly socket: net.Socket;
  private chunks: Buffer[] = [];
  readonly openedAt = Date.now();
  /** The client's port: the gateway's audit records name it in `remote`. */
  readonly localPort: number;
  closedAt?: number;
  readonly closed: Promise<void>;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.localPort = socket.localPort!;
    socket.on('data', (d: Buffer) => this.chunks.push(d));
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => socket.once('close', () => {
      this.closedAt = Date.now();
      resolve();
    }));
  }

  static connect(port: number): Promise<RawConn> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => resolve(new RawConn(s)));
      s.once('error', reject);
    });
  }

  get received(): Buffer {
    return Buffer.concat(this.chunks);
  }

  write(b: Buffer | string): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed) resolve();
      else this.socket.write(b, () => resolve());
    });
  }

  /** Waits until the gateway closed the connection; rejects after `ms`. */
  async closedWithin(ms: number): Promise<number> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the gateway did not close the connection within ${ms} ms; received ${this.received.length} bytes`)), ms);
    });
    try {
      await Promise.race([this.closed, deadline]);
    } finally {
      clearTimeout(timer);
    }
    return this.closedAt! - this.openedAt;
  }

  /** Waits until at least `n` bytes arrived (or the connection closed). */
  async bytes(n: number, ms = 5000): Promise<Buffer> {
    const deadline = Date.now() + ms;
    while (this.received.length < n && this.closedAt === undefined) {
      if (Date.now() > deadline) throw new Error(`expected ${n} bytes within ${ms} ms, got ${this.received.length}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.received;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

// ---- PostgreSQL ----------------------------------------------------------------------

export const PG_PROTOCOL_3 = 196608;
export const SSL_REQUEST_CODE = 80877103;
export const CANCEL_REQUEST_CODE = 80877102;

export function int32s(...values: number[]): Buffer {
  const b = Buffer.alloc(4 * values.length);
  values.forEach((v, i) => b.writeUInt32BE(v >>> 0, i * 4));
  return b;
}

export function pgStartup(params: Record<string, string>): Buffer {
  const body = Buffer.concat([int32s(PG_PROTOCOL_3), ...Object.entries(params).map(([k, v]) => Buffer.from(`${k}\0${v}\0`)), Buffer.from([0])]);
  return Buffer.concat([int32s(body.length + 4), body]);
}

export function pgTyped(type: string, body: Buffer | string): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  return Buffer.concat([Buffer.from(type), int32s(b.length + 4), b]);
}

export const pgPassword = (token: string): Buffer => pgTyped('p', `${token}\0`);
export const pgQuery = (sql: string): Buffer => pgTyped('Q', `${sql}\0`);

export interface PgMessage { type: string; body: Buffer }

/** Typed backend messages in `bytes` from `offset` (single-byte SSL answers must be skipped first). */
export function pgMessages(bytes: Buffer, offset = 0): PgMessage[] {
  const out: PgMessage[] = [];
  let at = offset;
  while (at + 5 <= bytes.length) {
    const len = bytes.readUInt32BE(at + 1);
    if (at + 1 + len > bytes.length) break;
    out.push({ type: String.fromCharCode(bytes[at]), body: bytes.subarray(at + 5, at + 1 + len) });
    at += 1 + len;
  }
  return out;
}

/** The ErrorResponse fields (C = SQLSTATE, M = message, S = severity) of the last error in `bytes`. */
export function pgError(bytes: Buffer, offset = 0): { code?: string; message?: string; severity?: string } | undefined {
  const errors = pgMessages(bytes, offset).filter((m) => m.type === 'E');
  if (errors.length === 0) return undefined;
  const f = decodeErrorFields(errors[errors.length - 1].body) as unknown as Record<string, string | undefined>;
  return { code: f.code, message: f.message, severity: f.severity };
}

// ---- MySQL -----------------------------------------------------------------------------

export interface MyPacket { sequenceId: number; payload: Buffer }

export function myPackets(bytes: Buffer): MyPacket[] {
  const out: MyPacket[] = [];
  let at = 0;
  while (at + 4 <= bytes.length) {
    const len = bytes.readUIntLE(at, 3);
    if (at + 4 + len > bytes.length) break;
    out.push({ sequenceId: bytes[at + 3], payload: bytes.subarray(at + 4, at + 4 + len) });
    at += 4 + len;
  }
  return out;
}

/** The last ERR packet in `bytes`, decoded. */
export function myError(bytes: Buffer): { code: number; sqlState?: string; message: string } | undefined {
  const errs = myPackets(bytes).filter((p) => p.payload[0] === 0xff);
  if (errs.length === 0) return undefined;
  return decodeErr(errs[errs.length - 1].payload) as { code: number; sqlState?: string; message: string };
}

export { encodePacket };
