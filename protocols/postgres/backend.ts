/**
 * Backend messages: encoders for what the gateway itself says to clients, decoders for what the
 * upstream server says (the relay follows transaction state and audits errors; the upstream login
 * and internal queries read authentication requests, the welcome messages and rows).
 */
import { AuthCode, BackendType, MAX_CANCEL_KEY_LENGTH, MIN_CANCEL_KEY_LENGTH, TransactionStatus } from './constants';
import { ProtocolError } from './errors';
import { cstringBytes, readCString } from './text';

export { BackendType, AuthCode } from './constants';

/** Fields of an ErrorResponse / NoticeResponse by name. Encoding writes S, V (same as S), C, M, D, H. */
export interface ErrorFields {
  severity: string;
  code: string;
  message: string;
  detail?: string;
  hint?: string;
  [field: string]: string | undefined;
}

/** Field type bytes of ErrorResponse/NoticeResponse (protocol docs, "Error and Notice Message Fields"). */
export const ERROR_FIELD_NAMES: Readonly<Record<string, string>> = {
  S: 'severity',
  V: 'severityNonLocalized',
  C: 'code',
  M: 'message',
  D: 'detail',
  H: 'hint',
  P: 'position',
  p: 'internalPosition',
  q: 'internalQuery',
  W: 'where',
  s: 'schema',
  t: 'table',
  c: 'column',
  d: 'dataType',
  n: 'constraint',
  F: 'file',
  L: 'line',
  R: 'routine',
};

/** A whole message: type byte, int32 length (includes itself), body parts. */
export function encodeMessage(type: number, ...parts: Buffer[]): Buffer {
  let bodyLength = 0;
  for (const p of parts) bodyLength += p.length;
  const out = Buffer.allocUnsafe(5 + bodyLength);
  out[0] = type;
  out.writeUInt32BE(4 + bodyLength, 1);
  let pos = 5;
  for (const p of parts) pos += p.copy(out, pos);
  return out;
}

function int32(v: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeInt32BE(v, 0);
  return b;
}

function authentication(code: number): Buffer {
  return encodeMessage(BackendType.Authentication, int32(code));
}

export function authenticationOk(): Buffer {
  return authentication(AuthCode.Ok);
}

export function authenticationCleartextPassword(): Buffer {
  return authentication(AuthCode.CleartextPassword);
}

export function parameterStatus(name: string, value: string): Buffer {
  return encodeMessage(BackendType.ParameterStatus, cstringBytes(name), cstringBytes(value));
}

/** processId is an int32; secretKey is 4 bytes for protocol 3.0 clients, up to 256 for 3.2. */
export function backendKeyData(processId: number, secretKey: Buffer): Buffer {
  if (!Number.isInteger(processId) || processId < -0x80000000 || processId > 0x7fffffff) {
    throw new RangeError(`BackendKeyData process id must be an int32, got ${processId}`);
  }
  checkKeyLength(secretKey.length);
  return encodeMessage(BackendType.BackendKeyData, int32(processId), secretKey);
}

export function readyForQuery(status: TransactionStatus): Buffer {
  if (status !== 'I' && status !== 'T' && status !== 'E') throw new RangeError(`transaction status must be I, T or E, got ${status}`);
  return encodeMessage(BackendType.ReadyForQuery, Buffer.from([status.charCodeAt(0)]));
}

function encodeFields(type: number, f: ErrorFields): Buffer {
  const parts: Buffer[] = [];
  const add = (code: string, value: string | undefined): void => {
    if (value === undefined) return;
    parts.push(Buffer.from(code, 'latin1'), cstringBytes(value));
  };
  add('S', f.severity);
  add('V', f.severity);
  add('C', f.code);
  add('M', f.message);
  add('D', f.detail);
  add('H', f.hint);
  parts.push(Buffer.from([0]));
  return encodeMessage(type, ...parts);
}

export function errorResponse(f: ErrorFields): Buffer {
  return encodeFields(BackendType.ErrorResponse, f);
}

export function noticeResponse(f: ErrorFields): Buffer {
  return encodeFields(BackendType.NoticeResponse, f);
}

/** Tells a client asking for a newer minor version or unknown `_pq_.` options what the gateway speaks. */
export function negotiateProtocolVersion(newestMinor: number, unsupportedOptions: string[]): Buffer {
  if (!Number.isInteger(newestMinor) || newestMinor < 0 || newestMinor > 0xffff) {
    throw new RangeError(`newest minor protocol version must be 0..65535, got ${newestMinor}`);
  }
  return encodeMessage(
    BackendType.NegotiateProtocolVersion,
    int32((3 << 16) | newestMinor),
    int32(unsupportedOptions.length),
    ...unsupportedOptions.map(cstringBytes),
  );
}

/** 'E'/'N' body → fields by name. Unknown field codes are kept as `field_<code>`. */
export function decodeErrorFields(body: Buffer): ErrorFields {
  const fields: Record<string, string> = Object.create(null);
  let pos = 0;
  for (;;) {
    if (pos >= body.length) throw new ProtocolError('error/notice message is missing its final NUL terminator');
    const code = body[pos];
    if (code === 0) {
      if (pos !== body.length - 1) throw new ProtocolError('error/notice message has bytes after its final terminator');
      break;
    }
    const letter = String.fromCharCode(code);
    const name = ERROR_FIELD_NAMES[letter] ?? `field_${letter}`;
    const value = readCString(body, pos + 1, `error/notice field ${name}`);
    fields[name] = value.value;
    pos = value.next;
  }
  const { severity, code, message } = fields;
  if (severity === undefined || code === undefined || message === undefined) {
    throw new ProtocolError('error/notice message lacks one of the required fields severity (S), code (C), message (M)');
  }
  return { ...fields, severity, code, message };
}

export function decodeReadyForQuery(body: Buffer): TransactionStatus {
  return decodeReadyForQueryStatus(body.length, body[0]);
}

/** decodeReadyForQuery from the body's length and first byte, for a relay that reads frames in place. */
export function decodeReadyForQueryStatus(bodyLength: number, statusByte: number | undefined): TransactionStatus {
  if (bodyLength !== 1) throw new ProtocolError(`ReadyForQuery body must be 1 byte, got ${bodyLength}`);
  switch (statusByte) {
    case 0x49: return 'I';
    case 0x54: return 'T';
    case 0x45: return 'E';
    default: throw new ProtocolError(`ReadyForQuery transaction status must be I, T or E, got byte 0x${(statusByte ?? 0).toString(16)}`);
  }
}

/** CommandComplete ('C') body: the command tag, e.g. "SELECT 1". */
export function decodeCommandComplete(body: Buffer): string {
  const tag = readCString(body, 0, 'command tag');
  if (tag.next !== body.length) throw new ProtocolError('CommandComplete has bytes after its command tag');
  return tag.value;
}

export function decodeParameterStatus(body: Buffer): { name: string; value: string } {
  const name = readCString(body, 0, 'ParameterStatus name');
  const value = readCString(body, name.next, `ParameterStatus value of "${name.value}"`);
  if (value.next !== body.length) throw new ProtocolError('ParameterStatus has bytes after its value');
  return { name: name.value, value: value.value };
}

export function decodeBackendKeyData(body: Buffer): { processId: number; secretKey: Buffer } {
  if (body.length < 4) throw new ProtocolError(`BackendKeyData body is ${body.length} bytes, expected a process id and a key`);
  checkKeyLength(body.length - 4, ProtocolError);
  return { processId: body.readInt32BE(0), secretKey: Buffer.from(body.subarray(4)) };
}

/** Authentication ('R') body → its sub-code (AuthCode) and the method-specific data after it. */
export function decodeAuthentication(body: Buffer): { code: number; data: Buffer } {
  if (body.length < 4) throw new ProtocolError(`Authentication message body is ${body.length} bytes, expected at least 4`);
  return { code: body.readInt32BE(0), data: body.subarray(4) };
}

/**
 * What an Authentication ('R') message asks of the client. Every sub-code decodes to something:
 * methods the gateway cannot perform come back as `unsupported` with a name for the error message,
 * so a caller can refuse them by name instead of failing on an unknown code.
 */
export type AuthenticationRequest =
  | { kind: 'ok' }
  | { kind: 'cleartextPassword' }
  | { kind: 'md5Password'; salt: Buffer }
  | { kind: 'sasl'; mechanisms: string[] }
  | { kind: 'saslContinue'; data: Buffer }
  | { kind: 'saslFinal'; data: Buffer }
  | { kind: 'unsupported'; code: number; method: string };

/** Sub-codes with no AuthCode constant because the gateway never performs them (protocol docs, "Message Formats"). */
const UNSUPPORTED_AUTH_METHODS: Readonly<Record<number, string>> = {
  2: 'Kerberos V5',
  6: 'SCM credentials',
  7: 'GSSAPI',
  8: 'GSSAPI continue',
  9: 'SSPI',
};

/** Authentication ('R') body → the request, checked against the layout of its sub-code. */
export function decodeAuthenticationRequest(body: Buffer): AuthenticationRequest {
  const { code, data } = decodeAuthentication(body);
  const noData = (): void => {
    if (data.length !== 0) throw new ProtocolError(`Authentication request ${code} carries ${data.length} unexpected bytes after its code`);
  };
  switch (code) {
    case AuthCode.Ok:
      noData();
      return { kind: 'ok' };
    case AuthCode.CleartextPassword:
      noData();
      return { kind: 'cleartextPassword' };
    case AuthCode.MD5Password:
      if (data.length !== 4) throw new ProtocolError(`AuthenticationMD5Password carries a ${data.length}-byte salt, expected 4`);
      return { kind: 'md5Password', salt: Buffer.from(data) };
    case AuthCode.SASL:
      return { kind: 'sasl', mechanisms: decodeSaslMechanisms(data) };
    case AuthCode.SASLContinue:
      return { kind: 'saslContinue', data: Buffer.from(data) };
    case AuthCode.SASLFinal:
      return { kind: 'saslFinal', data: Buffer.from(data) };
    default:
      return { kind: 'unsupported', code, method: UNSUPPORTED_AUTH_METHODS[code] ?? `authentication code ${code}` };
  }
}

/** AuthenticationSASL data: mechanism names as cstrings, ended by an empty name (a lone NUL). */
function decodeSaslMechanisms(data: Buffer): string[] {
  const mechanisms: string[] = [];
  let pos = 0;
  for (;;) {
    if (pos >= data.length) throw new ProtocolError('AuthenticationSASL mechanism list is missing its final NUL terminator');
    if (data[pos] === 0) {
      if (pos !== data.length - 1) throw new ProtocolError('AuthenticationSASL has bytes after its mechanism list');
      return mechanisms;
    }
    const name = readCString(data, pos, 'SASL mechanism name');
    mechanisms.push(name.value);
    pos = name.next;
  }
}

/**
 * DataRow ('D') body → each column's bytes (a view into `body`, not a copy), null for SQL NULL.
 * The bytes are text or binary as the query's result format says; the caller decodes them.
 */
export function decodeDataRow(body: Buffer): Array<Buffer | null> {
  if (body.length < 2) throw new ProtocolError(`DataRow body is ${body.length} bytes, expected at least 2 (the column count)`);
  const count = body.readUInt16BE(0);
  // Each column takes at least its 4-byte length, so the count is bounded by the body.
  if (count * 4 > body.length - 2) throw new ProtocolError(`DataRow claims ${count} columns in ${body.length - 2} bytes`);
  const columns: Array<Buffer | null> = new Array(count);
  let pos = 2;
  for (let i = 0; i < count; i++) {
    if (pos + 4 > body.length) throw new ProtocolError(`DataRow ends inside the length of column ${i + 1} of ${count}`);
    const len = body.readInt32BE(pos);
    pos += 4;
    if (len === -1) {
      columns[i] = null;
      continue;
    }
    if (len < 0 || len > body.length - pos) {
      throw new ProtocolError(`DataRow column ${i + 1} of ${count} has length ${len}, but ${body.length - pos} bytes remain`);
    }
    columns[i] = body.subarray(pos, pos + len);
    pos += len;
  }
  if (pos !== body.length) throw new ProtocolError(`DataRow has ${body.length - pos} bytes after its last column`);
  return columns;
}

export function decodeNegotiateProtocolVersion(body: Buffer): { newestMinor: number; major: number; unsupportedOptions: string[] } {
  if (body.length < 8) throw new ProtocolError(`NegotiateProtocolVersion body is ${body.length} bytes, expected at least 8`);
  const version = body.readUInt32BE(0);
  const count = body.readUInt32BE(4);
  // Each option takes at least one byte, so the count is bounded by the body.
  if (count > body.length - 8) throw new ProtocolError(`NegotiateProtocolVersion claims ${count} options in ${body.length - 8} bytes`);
  const unsupportedOptions: string[] = [];
  let pos = 8;
  for (let i = 0; i < count; i++) {
    const opt = readCString(body, pos, 'NegotiateProtocolVersion option');
    unsupportedOptions.push(opt.value);
    pos = opt.next;
  }
  if (pos !== body.length) throw new ProtocolError('NegotiateProtocolVersion has bytes after its option list');
  return { major: version >>> 16, newestMinor: version & 0xffff, unsupportedOptions };
}

function checkKeyLength(n: number, E: new (m: string) => Error = RangeError): void {
  if (n < MIN_CANCEL_KEY_LENGTH || n > MAX_CANCEL_KEY_LENGTH) {
    throw new E(`cancel secret key must be ${MIN_CANCEL_KEY_LENGTH}..${MAX_CANCEL_KEY_LENGTH} bytes, got ${n}`);
  }
}
