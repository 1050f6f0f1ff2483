/**
 * Decodes what a client sends before authentication: StartupMessage, SSLRequest, GSSENCRequest,
 * CancelRequest. Input is the packet body (the bytes after the int32 length), e.g. a startup Frame's body.
 */
import {
  CANCEL_REQUEST_CODE,
  GSSENC_REQUEST_CODE,
  MAX_CANCEL_KEY_LENGTH,
  MIN_CANCEL_KEY_LENGTH,
  SSL_REQUEST_CODE,
} from './constants';
import { ProtocolError } from './errors';
import { quoteForError, readCString } from './text';

export { ProtocolError } from './errors';

export type StartupPacket =
  | { kind: 'ssl' }
  | { kind: 'gssenc' }
  /** secretKey is 4 bytes on protocol 3.0 and up to 256 on 3.2 (PostgreSQL 18). */
  | { kind: 'cancel'; processId: number; secretKey: Buffer }
  | {
      kind: 'startup';
      major: number;
      minor: number;
      /** Ordinary parameters: user, database, options, application_name, GUCs... */
      parameters: Record<string, string>;
      /** Protocol extension options (names starting with `_pq_.`), to answer with NegotiateProtocolVersion. */
      protocolOptions: Record<string, string>;
    }
  /** A code the gateway does not speak, e.g. protocol 2.0: answer with a FATAL error. */
  | { kind: 'unsupported'; code: number };

/** More parameters than any real client sends; PostgreSQL itself is limited only by the 10000-byte packet. */
export const MAX_STARTUP_PARAMETERS = 64;
export const PROTOCOL_OPTION_PREFIX = '_pq_.';

export function decodeStartupPacket(body: Buffer): StartupPacket {
  if (body.length < 4) {
    throw new ProtocolError(`startup packet is ${body.length + 4} bytes long, expected at least 8 (length and protocol code)`);
  }
  const code = body.readUInt32BE(0);
  switch (code) {
    case SSL_REQUEST_CODE:
      expectExactLength(body, 4, 'SSLRequest');
      return { kind: 'ssl' };
    case GSSENC_REQUEST_CODE:
      expectExactLength(body, 4, 'GSSENCRequest');
      return { kind: 'gssenc' };
    case CANCEL_REQUEST_CODE:
      return decodeCancel(body);
  }
  const major = code >>> 16;
  const minor = code & 0xffff;
  if (major !== 3) return { kind: 'unsupported', code };
  const { parameters, protocolOptions } = decodeParameters(body, 4);
  return { kind: 'startup', major, minor, parameters, protocolOptions };
}

function expectExactLength(body: Buffer, bodyLength: number, what: string): void {
  if (body.length !== bodyLength) {
    throw new ProtocolError(`${what} must be exactly ${bodyLength + 4} bytes long, got ${body.length + 4}`);
  }
}

function decodeCancel(body: Buffer): StartupPacket {
  const keyLength = body.length - 8;
  if (keyLength < MIN_CANCEL_KEY_LENGTH || keyLength > MAX_CANCEL_KEY_LENGTH) {
    throw new ProtocolError(
      `CancelRequest is ${body.length + 4} bytes long, expected 16 to ${12 + MAX_CANCEL_KEY_LENGTH} ` +
        `(process id and a ${MIN_CANCEL_KEY_LENGTH}..${MAX_CANCEL_KEY_LENGTH}-byte secret key)`,
    );
  }
  return { kind: 'cancel', processId: body.readInt32BE(4), secretKey: Buffer.from(body.subarray(8)) };
}

function decodeParameters(body: Buffer, start: number): { parameters: Record<string, string>; protocolOptions: Record<string, string> } {
  // Null-prototype objects: a parameter named "__proto__" must stay data.
  const parameters: Record<string, string> = Object.create(null);
  const protocolOptions: Record<string, string> = Object.create(null);
  const seen = new Set<string>();
  let pos = start;
  for (;;) {
    if (pos >= body.length) {
      throw new ProtocolError('StartupMessage parameter list is missing its final NUL terminator');
    }
    if (body[pos] === 0) {
      if (pos !== body.length - 1) {
        throw new ProtocolError(`StartupMessage has ${body.length - 1 - pos} bytes after the terminator of its parameter list`);
      }
      return { parameters, protocolOptions };
    }
    if (seen.size >= MAX_STARTUP_PARAMETERS) {
      throw new ProtocolError(`StartupMessage has more than ${MAX_STARTUP_PARAMETERS} parameters`);
    }
    const name = readCString(body, pos, 'StartupMessage parameter name');
    if (name.next >= body.length) {
      throw new ProtocolError(`StartupMessage parameter ${quoteForError(name.value)} has no value`);
    }
    const value = readCString(body, name.next, `value of StartupMessage parameter ${quoteForError(name.value)}`);
    if (seen.has(name.value)) {
      throw new ProtocolError(`StartupMessage sets parameter ${quoteForError(name.value)} twice; send each parameter once`);
    }
    seen.add(name.value);
    if (name.value.startsWith(PROTOCOL_OPTION_PREFIX)) protocolOptions[name.value] = value.value;
    else parameters[name.value] = value.value;
    pos = value.next;
  }
}
