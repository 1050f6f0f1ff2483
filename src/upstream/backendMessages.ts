import { UpstreamProtocolError } from './backendFrames';

/**
 * Decoders for the few backend messages the gateway reads itself (login and internal
 * queries). Written here rather than taken from pg-protocol's Parser because that parser
 * throws on authentication codes it does not know, reads BackendKeyData as a fixed int32
 * and its cstring reader does not stop at the end of a truncated message. Every decoder is
 * bounded by the body it is given and throws UpstreamProtocolError on malformed input.
 */

/** ErrorResponse / NoticeResponse fields by their protocol names. */
export interface PgErrorFields {
  code: string;
  message: string;
  severity?: string;
  detail?: string;
  hint?: string;
  position?: string;
  where?: string;
  schema?: string;
  table?: string;
  column?: string;
  dataType?: string;
  constraint?: string;
  [k: string]: string | undefined;
}

const FIELD_NAMES: Record<string, string> = {
  S: 'severityLocalized', V: 'severity', C: 'code', M: 'message', D: 'detail', H: 'hint', P: 'position',
  p: 'internalPosition', q: 'internalQuery', W: 'where', s: 'schema', t: 'table', c: 'column',
  d: 'dataType', n: 'constraint', F: 'file', L: 'line', R: 'routine',
};

export function decodeErrorFields(body: Buffer): PgErrorFields {
  const out: Record<string, string> = {};
  let pos = 0;
  while (pos < body.length && body[pos] !== 0) {
    const letter = String.fromCharCode(body[pos]);
    const [value, next] = cstring(body, pos + 1, 'ErrorResponse field');
    out[FIELD_NAMES[letter] ?? letter] = value;
    pos = next;
  }
  if (out.severity === undefined && out.severityLocalized !== undefined) out.severity = out.severityLocalized;
  return { ...out, code: out.code ?? 'XX000', message: out.message ?? '(no message)' };
}

export type AuthRequest =
  | { kind: 'ok' }
  | { kind: 'cleartext' }
  | { kind: 'md5'; salt: Buffer }
  | { kind: 'sasl'; mechanisms: string[] }
  | { kind: 'saslContinue'; data: string }
  | { kind: 'saslFinal'; data: string }
  | { kind: 'other'; code: number; method: string };

const OTHER_AUTH: Record<number, string> = {
  2: 'Kerberos V5', 6: 'SCM credentials', 7: 'GSSAPI', 8: 'GSSAPI continue', 9: 'SSPI',
};

export function decodeAuthRequest(body: Buffer): AuthRequest {
  if (body.length < 4) throw new UpstreamProtocolError('Upstream sent an authentication request shorter than 4 bytes.');
  const code = body.readInt32BE(0);
  const rest = body.subarray(4);
  switch (code) {
    case 0: return { kind: 'ok' };
    case 3: return { kind: 'cleartext' };
    case 5:
      if (rest.length !== 4) throw new UpstreamProtocolError('Upstream md5 authentication request does not carry a 4-byte salt.');
      return { kind: 'md5', salt: Buffer.from(rest) };
    case 10: {
      const mechanisms: string[] = [];
      let pos = 0;
      while (pos < rest.length && rest[pos] !== 0) {
        const [name, next] = cstring(rest, pos, 'SASL mechanism list');
        mechanisms.push(name);
        pos = next;
      }
      return { kind: 'sasl', mechanisms };
    }
    case 11: return { kind: 'saslContinue', data: rest.toString('utf8') };
    case 12: return { kind: 'saslFinal', data: rest.toString('utf8') };
    default: return { kind: 'other', code, method: OTHER_AUTH[code] ?? `authentication code ${code}` };
  }
}

export function decodeParameterStatus(body: Buffer): { name: string; value: string } {
  const [name, next] = cstring(body, 0, 'ParameterStatus');
  const [value] = cstring(body, next, 'ParameterStatus');
  return { name, value };
}

/** BackendKeyData: pid + a key of 4 bytes (protocol 3.0) or up to 256 (3.2). */
export function decodeBackendKeyData(body: Buffer): { processId: number; secretKey: Buffer } {
  if (body.length < 8 || body.length > 260) {
    throw new UpstreamProtocolError(`Upstream BackendKeyData has ${body.length} bytes; expected 8..260.`);
  }
  return { processId: body.readInt32BE(0), secretKey: Buffer.from(body.subarray(4)) };
}

export function decodeReadyForQuery(body: Buffer): 'I' | 'T' | 'E' {
  const s = body.length === 1 ? String.fromCharCode(body[0]) : '';
  if (s !== 'I' && s !== 'T' && s !== 'E') throw new UpstreamProtocolError('Upstream ReadyForQuery carries no valid transaction status.');
  return s;
}

export function decodeCommandComplete(body: Buffer): string {
  return cstring(body, 0, 'CommandComplete')[0];
}

/** DataRow in text format; NULL is null. */
export function decodeDataRow(body: Buffer): Array<string | null> {
  if (body.length < 2) throw new UpstreamProtocolError('Upstream DataRow is shorter than 2 bytes.');
  const count = body.readUInt16BE(0);
  const row: Array<string | null> = [];
  let pos = 2;
  for (let i = 0; i < count; i++) {
    if (pos + 4 > body.length) throw new UpstreamProtocolError('Upstream DataRow is truncated.');
    const len = body.readInt32BE(pos);
    pos += 4;
    if (len === -1) { row.push(null); continue; }
    if (len < 0 || pos + len > body.length) throw new UpstreamProtocolError('Upstream DataRow column length runs past the message.');
    row.push(body.toString('utf8', pos, pos + len));
    pos += len;
  }
  return row;
}

function cstring(buf: Buffer, start: number, what: string): [string, number] {
  const end = buf.indexOf(0, start);
  if (end < 0) throw new UpstreamProtocolError(`Upstream ${what} has a string without its terminating NUL.`);
  return [buf.toString('utf8', start, end), end + 1];
}
