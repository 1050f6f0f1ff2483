/**
 * Generic response packets: OK, ERR and EOF. Decoders accept a captured prefix of
 * a larger payload where noted (the relay keeps only a bounded prefix).
 */
import {
  CLIENT_DEPRECATE_EOF,
  CLIENT_PROTOCOL_41,
  CLIENT_SESSION_TRACK,
  CLIENT_TRANSACTIONS,
  EOF_HEADER,
  ERR_HEADER,
  MAX_PACKET_PAYLOAD,
  OK_HEADER,
  SERVER_SESSION_STATE_CHANGED,
} from './constants';
import { MysqlDecodeError } from './errors';
import { PayloadReader, writeLenencInt, writeLenencString, writeLenencBytes } from './lenenc';

/** EOF packets are shorter than 9 bytes; longer 0xFE payloads are rows or OK-as-EOF. */
export const EOF_MAX_LENGTH = 9;

export interface OkFields {
  affectedRows?: bigint | number;
  lastInsertId?: bigint | number;
  statusFlags?: number;
  warnings?: number;
  info?: string;
  /** Raw session-state-change block (only with CLIENT_SESSION_TRACK and SERVER_SESSION_STATE_CHANGED). */
  sessionStateChanges?: Buffer;
  /** 0x00 normally; 0xFE for the OK that ends a result set under CLIENT_DEPRECATE_EOF. */
  header?: typeof OK_HEADER | typeof EOF_HEADER;
}

export interface OkPacket {
  affectedRows: bigint;
  lastInsertId: bigint;
  statusFlags: number;
  warnings: number;
  info: string;
  sessionStateChanges?: Buffer;
}

export function encodeOk(o: OkFields, capabilities: number): Buffer {
  const parts: Buffer[] = [
    Buffer.from([o.header ?? OK_HEADER]),
    writeLenencInt(o.affectedRows ?? 0),
    writeLenencInt(o.lastInsertId ?? 0),
  ];
  let status = o.statusFlags ?? 0;
  if (o.sessionStateChanges) status |= SERVER_SESSION_STATE_CHANGED;
  if (capabilities & CLIENT_PROTOCOL_41) {
    const b = Buffer.alloc(4);
    b.writeUInt16LE(status & 0xffff, 0);
    b.writeUInt16LE((o.warnings ?? 0) & 0xffff, 2);
    parts.push(b);
  } else if (capabilities & CLIENT_TRANSACTIONS) {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(status & 0xffff, 0);
    parts.push(b);
  }
  const info = o.info ?? '';
  if (capabilities & CLIENT_SESSION_TRACK) {
    // The info string is optional at the end, but when state changes follow it must be present.
    if (info !== '' || (status & SERVER_SESSION_STATE_CHANGED && o.sessionStateChanges)) parts.push(writeLenencString(info));
    if (status & SERVER_SESSION_STATE_CHANGED && o.sessionStateChanges) parts.push(writeLenencBytes(o.sessionStateChanges));
  } else {
    parts.push(Buffer.from(info, 'utf8'));
  }
  return Buffer.concat(parts);
}

/** Decodes an OK packet (header 0x00, or 0xFE for OK-as-EOF). A truncated info string is tolerated. */
export function decodeOk(payload: Buffer, capabilities: number): OkPacket {
  const r = new PayloadReader(payload, 'OK packet');
  const header = r.u8('header');
  if (header !== OK_HEADER && header !== EOF_HEADER) {
    throw new MysqlDecodeError('malformed', 'OK packet', `header 0x${header.toString(16)} where 0x00 or 0xfe was expected`);
  }
  const out: OkPacket = {
    affectedRows: r.lenencInt('affected rows'),
    lastInsertId: r.lenencInt('last insert id'),
    statusFlags: 0,
    warnings: 0,
    info: '',
  };
  if (capabilities & CLIENT_PROTOCOL_41) {
    out.statusFlags = r.u16('status flags');
    out.warnings = r.u16('warnings');
  } else if (capabilities & CLIENT_TRANSACTIONS) {
    out.statusFlags = r.u16('status flags');
  }
  if (capabilities & CLIENT_SESSION_TRACK) {
    if (!r.atEnd) out.info = readTolerant(r, 'info');
    if (out.statusFlags & SERVER_SESSION_STATE_CHANGED && !r.atEnd) {
      out.sessionStateChanges = readTolerantBytes(r, 'session state changes');
    }
  } else {
    out.info = r.rest().toString('utf8');
  }
  return out;
}

// A lenenc string cut off by the capture limit: keep what is there.
function readTolerantBytes(r: PayloadReader, field: string): Buffer {
  const start = r.offset;
  try {
    return r.lenencBytes(field);
  } catch (e) {
    if (e instanceof MysqlDecodeError && e.code === 'truncated') {
      r.offset = start;
      r.lenencInt(field); // the length itself must be complete
      return r.rest();
    }
    throw e;
  }
}

function readTolerant(r: PayloadReader, field: string): string {
  return readTolerantBytes(r, field).toString('utf8');
}

export interface ErrPacket {
  code: number;
  sqlState?: string;
  message: string;
}

/** 0xFF, error code, '#', 5-character SQLSTATE, message. */
export function encodeErr(o: { code: number; sqlState: string; message: string }): Buffer {
  if (!/^[0-9A-Z]{5}$/.test(o.sqlState)) throw new RangeError(`SQLSTATE must be 5 characters [0-9A-Z], got ${JSON.stringify(o.sqlState)}`);
  const head = Buffer.alloc(3);
  head[0] = ERR_HEADER;
  head.writeUInt16LE(o.code & 0xffff, 1);
  return Buffer.concat([head, Buffer.from('#' + o.sqlState, 'latin1'), Buffer.from(o.message, 'utf8')]);
}

/** Decodes an ERR packet. The SQLSTATE is absent when the server sent none (pre-4.1 or very early errors). */
export function decodeErr(payload: Buffer): ErrPacket {
  const r = new PayloadReader(payload, 'ERR packet');
  const header = r.u8('header');
  if (header !== ERR_HEADER) {
    throw new MysqlDecodeError('malformed', 'ERR packet', `header 0x${header.toString(16)} where 0xff was expected`);
  }
  const code = r.u16('error code');
  if (r.remaining >= 6 && payload[r.offset] === 0x23 /* # */) {
    r.skip(1, 'SQLSTATE marker');
    const sqlState = r.bytes(5, 'SQLSTATE').toString('latin1');
    return { code, sqlState, message: r.rest().toString('utf8') };
  }
  return { code, message: r.rest().toString('utf8') };
}

export interface EofPacket {
  warnings: number;
  statusFlags: number;
}

export function encodeEof(o: { warnings?: number; statusFlags?: number }, capabilities: number): Buffer {
  if (!(capabilities & CLIENT_PROTOCOL_41)) return Buffer.from([EOF_HEADER]);
  const b = Buffer.alloc(5);
  b[0] = EOF_HEADER;
  b.writeUInt16LE((o.warnings ?? 0) & 0xffff, 1);
  b.writeUInt16LE((o.statusFlags ?? 0) & 0xffff, 3);
  return b;
}

export function decodeEof(payload: Buffer, capabilities: number): EofPacket {
  if (!isEof(payload)) throw new MysqlDecodeError('malformed', 'EOF packet', 'expected 0xfe and fewer than 9 bytes');
  if (!(capabilities & CLIENT_PROTOCOL_41) || payload.length < 5) return { warnings: 0, statusFlags: 0 };
  return { warnings: payload.readUInt16LE(1), statusFlags: payload.readUInt16LE(3) };
}

/** An ERR packet (0xFF). For isEof/isOk, `payloadLength` is the announced length when `payload` is a captured prefix. */
export function isErr(payload: Buffer): boolean {
  return payload.length > 0 && payload[0] === ERR_HEADER;
}

/** A classic EOF packet: 0xFE and a payload shorter than 9 bytes. */
export function isEof(payload: Buffer, payloadLength = payload.length): boolean {
  return payload.length > 0 && payload[0] === EOF_HEADER && payloadLength < EOF_MAX_LENGTH;
}

/**
 * An OK packet: 0x00 with at least 7 bytes, or (with CLIENT_DEPRECATE_EOF) the
 * 0xFE OK that ends a result set, which is shorter than a 16 MiB packet.
 */
export function isOk(payload: Buffer, capabilities: number, payloadLength = payload.length): boolean {
  if (payload.length === 0) return false;
  if (payload[0] === OK_HEADER) return payloadLength >= 7 || !(capabilities & CLIENT_PROTOCOL_41);
  if (payload[0] === EOF_HEADER && capabilities & CLIENT_DEPRECATE_EOF) return payloadLength < MAX_PACKET_PAYLOAD;
  return false;
}
