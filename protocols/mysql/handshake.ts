/**
 * Connection phase packets: the server greeting (HandshakeV10), the client's
 * SSLRequest and HandshakeResponse41. The gateway decodes what clients send,
 * encodes its own greeting, and does the reverse towards the upstream server.
 */
import {
  CLIENT_CONNECT_ATTRS,
  CLIENT_CONNECT_WITH_DB,
  CLIENT_LONG_PASSWORD,
  CLIENT_PLUGIN_AUTH,
  CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA,
  CLIENT_PROTOCOL_41,
  CLIENT_SECURE_CONNECTION,
  CLIENT_SSL,
  HANDSHAKE_V10,
  MAX_PACKET_PAYLOAD,
  PACKET_HEADER_LENGTH,
} from './constants';
import { MysqlDecodeError } from './errors';
import { PayloadReader, readLenencBytes, writeLenencBytes, writeLenencInt, writeLenencString } from './lenenc';

/** Bounds on names in the connection phase (MySQL limits are far lower; these only stop abuse). */
export const MAX_NAME_BYTES = 1024;
export const MAX_AUTH_RESPONSE_BYTES = 65536;
export const MAX_CONNECT_ATTRS_BYTES = 65536;
export const MAX_CONNECT_ATTRS = 256;
/** The scramble (nonce) in the greeting is always 20 bytes. */
export const SCRAMBLE_LENGTH = 20;
/** SSLRequest payload: caps(4) + max packet(4) + charset(1) + 23 filler bytes. */
export const SSL_REQUEST_LENGTH = 32;

export interface HandshakeV10 {
  serverVersion: string;
  connectionId: number;
  /** The 20-byte scramble (both parts joined, without the trailing NUL). */
  authPluginData: Buffer;
  /** All 32 capability bits. */
  capabilities: number;
  characterSet: number;
  statusFlags: number;
  authPluginName: string;
  /** MariaDB extended capabilities (the last 4 reserved bytes) when the server does not set CLIENT_LONG_PASSWORD. */
  mariadbCapabilities?: number;
}

export function encodeHandshakeV10(h: HandshakeV10): Buffer {
  if (h.authPluginData.length !== SCRAMBLE_LENGTH) {
    throw new RangeError(`authPluginData must be ${SCRAMBLE_LENGTH} bytes, got ${h.authPluginData.length}`);
  }
  const fixed = Buffer.alloc(4 + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10);
  let o = 0;
  o = fixed.writeUInt32LE(h.connectionId >>> 0, o);
  h.authPluginData.copy(fixed, o, 0, 8);
  o += 8;
  fixed[o++] = 0; // filler
  o = fixed.writeUInt16LE(h.capabilities & 0xffff, o);
  fixed[o++] = h.characterSet & 0xff;
  o = fixed.writeUInt16LE(h.statusFlags & 0xffff, o);
  o = fixed.writeUInt16LE((h.capabilities >>> 16) & 0xffff, o);
  fixed[o++] = SCRAMBLE_LENGTH + 1;
  if (h.mariadbCapabilities !== undefined) fixed.writeUInt32LE(h.mariadbCapabilities >>> 0, o + 6);
  return Buffer.concat([
    Buffer.from([HANDSHAKE_V10]),
    Buffer.from(h.serverVersion + '\0', 'utf8'),
    fixed,
    h.authPluginData.subarray(8, SCRAMBLE_LENGTH),
    Buffer.from([0]),
    Buffer.from(h.authPluginName + '\0', 'utf8'),
  ]);
}

/** The greeting fields that are the same for every connection of a listener. */
export type HandshakeV10Constants = Omit<HandshakeV10, 'connectionId' | 'authPluginData'>;

/**
 * A greeting packet (header with sequence id 0, then the HandshakeV10 payload) encoded once
 * by encodeHandshakeV10; each connection copies it and writes its connection id and scramble
 * in place. `packet(id, scramble)` equals `encodePacket(0, encodeHandshakeV10({ ...constants,
 * connectionId: id, authPluginData: scramble }))` byte for byte.
 */
export class HandshakeV10Template {
  readonly constants: Readonly<HandshakeV10Constants>;
  private readonly bytes: Buffer;
  /** Offset of the connection id; scramble part 1 follows it, part 2 sits 31 bytes after it. */
  private readonly idOffset: number;

  constructor(constants: HandshakeV10Constants) {
    this.constants = Object.freeze({ ...constants });
    const payload = encodeHandshakeV10({ ...constants, connectionId: 0, authPluginData: Buffer.alloc(SCRAMBLE_LENGTH) });
    if (payload.length >= MAX_PACKET_PAYLOAD) throw new RangeError('a greeting must fit in one packet');
    this.bytes = Buffer.alloc(PACKET_HEADER_LENGTH + payload.length);
    this.bytes.writeUIntLE(payload.length, 0, 3); // sequence id 0
    payload.copy(this.bytes, PACKET_HEADER_LENGTH);
    // protocol version, server version + NUL, then the connection id.
    this.idOffset = PACKET_HEADER_LENGTH + 1 + Buffer.byteLength(constants.serverVersion, 'utf8') + 1;
  }

  /** A fresh greeting packet for one connection. */
  packet(connectionId: number, authPluginData: Buffer): Buffer {
    if (authPluginData.length !== SCRAMBLE_LENGTH) {
      throw new RangeError(`authPluginData must be ${SCRAMBLE_LENGTH} bytes, got ${authPluginData.length}`);
    }
    const out = Buffer.allocUnsafe(this.bytes.length);
    this.bytes.copy(out, 0);
    const o = out.writeUInt32LE(connectionId >>> 0, this.idOffset);
    authPluginData.copy(out, o, 0, 8);
    // part 1 (8), filler (1), capabilities (2), charset (1), status (2), capabilities (2), length (1), reserved (10)
    authPluginData.copy(out, o + 27, 8, SCRAMBLE_LENGTH);
    return out;
  }
}

export function decodeHandshakeV10(payload: Buffer): HandshakeV10 {
  const r = new PayloadReader(payload, 'HandshakeV10');
  const protocol = r.u8('protocol version');
  if (protocol !== HANDSHAKE_V10) {
    throw new MysqlDecodeError(
      payload[0] === 0xff ? 'unsupported' : 'malformed',
      'HandshakeV10',
      payload[0] === 0xff
        ? 'the server answered the connection with an ERR packet instead of a greeting'
        : `protocol version ${protocol} where 10 was expected; the server is not a MySQL-compatible server`,
    );
  }
  const serverVersion = r.nulString('server version', 255);
  const connectionId = r.u32('connection id');
  const part1 = r.bytes(8, 'auth-plugin-data part 1');
  r.skip(1, 'filler');
  let capabilities = r.u16('capability flags (lower)');
  const out: HandshakeV10 = {
    serverVersion,
    connectionId,
    authPluginData: Buffer.from(part1),
    capabilities,
    characterSet: 0,
    statusFlags: 0,
    authPluginName: '',
  };
  if (r.atEnd) return out; // pre-4.1 short greeting
  out.characterSet = r.u8('character set');
  out.statusFlags = r.u16('status flags');
  capabilities = (capabilities | (r.u16('capability flags (upper)') << 16)) >>> 0;
  out.capabilities = capabilities;
  const authDataLength = r.u8('auth-plugin-data length');
  const reserved = r.bytes(10, 'reserved');
  if (!(capabilities & CLIENT_LONG_PASSWORD)) out.mariadbCapabilities = reserved.readUInt32LE(6);
  if (capabilities & CLIENT_SECURE_CONNECTION) {
    // Part 2 is max(13, length - 8) bytes, the last one a NUL that is not part of the scramble.
    const part2Length = Math.max(13, authDataLength - 8);
    const part2 = r.bytes(part2Length, 'auth-plugin-data part 2');
    const scramble2 = part2[part2.length - 1] === 0 ? part2.subarray(0, part2.length - 1) : part2;
    out.authPluginData = Buffer.concat([part1, scramble2]);
  }
  if (capabilities & CLIENT_PLUGIN_AUTH) {
    // Some servers omit the final NUL (MySQL bug #59453).
    out.authPluginName = r.nulString('auth plugin name', MAX_NAME_BYTES, true);
  }
  return out;
}

export interface SslRequest {
  capabilities: number;
  maxPacketSize: number;
  characterSet: number;
}

/** An SSLRequest is the 32-byte prefix of a HandshakeResponse41 with CLIENT_SSL set, sent alone. */
export function isSslRequest(payload: Buffer): boolean {
  return payload.length === SSL_REQUEST_LENGTH && (payload.readUInt32LE(0) & CLIENT_SSL) !== 0;
}

export function decodeSslRequest(payload: Buffer): SslRequest {
  if (payload.length !== SSL_REQUEST_LENGTH) {
    throw new MysqlDecodeError('malformed', 'SSLRequest', `payload is ${payload.length} bytes where exactly ${SSL_REQUEST_LENGTH} are expected`);
  }
  const r = new PayloadReader(payload, 'SSLRequest');
  const capabilities = r.u32('capability flags');
  if (!(capabilities & CLIENT_SSL)) {
    throw new MysqlDecodeError('malformed', 'SSLRequest', 'CLIENT_SSL is not set, so this is not an SSLRequest');
  }
  return { capabilities, maxPacketSize: r.u32('max packet size'), characterSet: r.u8('character set') };
}

export function encodeSslRequest(req: SslRequest): Buffer {
  const out = Buffer.alloc(SSL_REQUEST_LENGTH);
  out.writeUInt32LE((req.capabilities | CLIENT_SSL) >>> 0, 0);
  out.writeUInt32LE(req.maxPacketSize >>> 0, 4);
  out[8] = req.characterSet & 0xff;
  return out;
}

export interface HandshakeResponse41 {
  /** The capability flags exactly as the client sent them. */
  capabilities: number;
  maxPacketSize: number;
  characterSet: number;
  username: string;
  authResponse: Buffer;
  database?: string;
  authPluginName?: string;
  connectAttributes?: Record<string, string>;
  /** MariaDB extended capabilities (last 4 filler bytes) when the client does not set CLIENT_LONG_PASSWORD. */
  mariadbCapabilities?: number;
}

const ATTRIBUTES = 'HandshakeResponse41 connect attributes';
const ATTRIBUTE_NAME = `${ATTRIBUTES} attribute name`;
const ATTRIBUTE_VALUE = `${ATTRIBUTES} attribute value`;

const EMPTY = Buffer.alloc(0);

/**
 * Decodes a HandshakeResponse41. The layout of the optional fields follows the
 * capabilities both sides have (client ∩ server): mysql2 and PyMySQL set
 * PLUGIN_AUTH_LENENC_CLIENT_DATA even when the server did not advertise it, and
 * then write the older 1-byte length. Trailing optional fields a client leaves out
 * are tolerated; everything else malformed (connection attributes included) throws
 * MysqlDecodeError.
 */
export function decodeHandshakeResponse41(payload: Buffer, serverCapabilities: number): DecodedHandshakeResponse41 {
  return new DecodedHandshakeResponse41(payload, serverCapabilities);
}

/**
 * A HandshakeResponse41 decoded from a client (see decodeHandshakeResponse41). The connection
 * attributes (a dozen name/value pairs from libmariadb, of which the gateway reads one or
 * two) are validated with the packet but become strings only when read:
 * `connectAttribute(name)` decodes just that value, `connectAttributes` all of them (once).
 */
export class DecodedHandshakeResponse41 implements HandshakeResponse41 {
  capabilities: number;
  maxPacketSize: number;
  characterSet: number;
  username: string;
  authResponse: Buffer = EMPTY;
  database?: string;
  authPluginName?: string;
  mariadbCapabilities?: number;
  /** The validated attribute block (a view into the payload). */
  readonly #attributes: Buffer | undefined;
  #attributeRecord: Record<string, string> | undefined;

  constructor(payload: Buffer, serverCapabilities: number) {
    const r = new PayloadReader(payload, 'HandshakeResponse41');
    const capabilities = r.u32('capability flags');
    if (!(capabilities & CLIENT_PROTOCOL_41)) {
      throw new MysqlDecodeError(
        'unsupported',
        'HandshakeResponse41',
        'the client did not set CLIENT_PROTOCOL_41; pre-4.1 clients are not supported, upgrade the driver',
      );
    }
    const caps = (capabilities & serverCapabilities) >>> 0;
    this.capabilities = capabilities;
    this.maxPacketSize = r.u32('max packet size');
    this.characterSet = r.u8('character set');
    r.skip(23, 'filler');
    this.username = r.nulString('username', MAX_NAME_BYTES, true);
    if (!(capabilities & CLIENT_LONG_PASSWORD)) this.mariadbCapabilities = payload.readUInt32LE(28); // the last 4 filler bytes
    if (r.atEnd) return;
    if (caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA) {
      this.authResponse = r.lenencBytes('auth response', MAX_AUTH_RESPONSE_BYTES);
    } else if (caps & CLIENT_SECURE_CONNECTION) {
      this.authResponse = r.bytes(r.u8('auth response length'), 'auth response');
    } else {
      this.authResponse = r.nulBytes('auth response', MAX_AUTH_RESPONSE_BYTES, true);
    }
    if (caps & CLIENT_CONNECT_WITH_DB && !r.atEnd) {
      this.database = r.nulString('database', MAX_NAME_BYTES, true);
    }
    if (caps & CLIENT_PLUGIN_AUTH && !r.atEnd) {
      this.authPluginName = r.nulString('auth plugin name', MAX_NAME_BYTES, true);
    }
    if (caps & CLIENT_CONNECT_ATTRS && !r.atEnd) {
      const block = r.lenencBytes('connect attributes', MAX_CONNECT_ATTRS_BYTES);
      walkConnectAttributes(block); // throws when malformed
      this.#attributes = block;
    }
  }

  /** All connection attributes; a later duplicate name wins. */
  get connectAttributes(): Record<string, string> | undefined {
    const block = this.#attributes;
    if (block === undefined || this.#attributeRecord !== undefined) return this.#attributeRecord;
    const attrs = Object.create(null) as Record<string, string>;
    walkConnectAttributes(block, (ns, ne, vs, ve) => {
      attrs[block.toString('utf8', ns, ne)] = block.toString('utf8', vs, ve);
    });
    return (this.#attributeRecord = attrs);
  }

  /** One connection attribute: the same as `connectAttributes?.[name]`, without decoding the others. */
  connectAttribute(name: string): string | undefined {
    const block = this.#attributes;
    if (block === undefined) return undefined;
    if (this.#attributeRecord !== undefined) return this.#attributeRecord[name];
    let value: string | undefined;
    walkConnectAttributes(block, (ns, ne, vs, ve) => {
      if (decodesTo(block, ns, ne, name)) value = block.toString('utf8', vs, ve);
    });
    return value;
  }
}

/** Whether `buf.toString('utf8', start, end) === s`, without decoding when `s` is ASCII. */
function decodesTo(buf: Buffer, start: number, end: number, s: string): boolean {
  if (end - start < s.length) return false; // UTF-8 never decodes to more UTF-16 units than it has bytes
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) return buf.toString('utf8', start, end) === s;
    if (buf[start + i] !== c) return false; // only that ASCII byte decodes to this ASCII character
  }
  return end - start === s.length;
}

/**
 * Walks a connect-attribute block (length-encoded name, length-encoded value, repeated),
 * calling `visit` with the byte ranges of each name and value. Throws the MysqlDecodeError
 * a PayloadReader would (truncated, too long, bad length byte; more than MAX_CONNECT_ATTRS
 * pairs), without allocating for the common 1-byte lengths.
 */
function walkConnectAttributes(block: Buffer, visit?: (nameStart: number, nameEnd: number, valueStart: number, valueEnd: number) => void): void {
  let o = 0;
  let count = 0;
  while (o < block.length) {
    if (++count > MAX_CONNECT_ATTRS) {
      throw new MysqlDecodeError('too_long', ATTRIBUTES, `more than ${MAX_CONNECT_ATTRS} attributes`);
    }
    const nameEnd = lenencEnd(block, o, ATTRIBUTE_NAME);
    const valueEnd = lenencEnd(block, nameEnd, ATTRIBUTE_VALUE);
    visit?.(o + lenencPrefixLength(block[o]), nameEnd, nameEnd + lenencPrefixLength(block[nameEnd]), valueEnd);
    o = valueEnd;
  }
}

/** End of the length-encoded string at `o`; throws as PayloadReader.lenencBytes would. */
function lenencEnd(buf: Buffer, o: number, what: string): number {
  const first = buf[o];
  if (first < 0xfb && o + 1 + first <= buf.length) return o + 1 + first;
  return readLenencBytes(buf, o, what).next; // longer lengths, and every error
}

/** Bytes of the (valid) length prefix that starts with `first`. */
function lenencPrefixLength(first: number): number {
  return first < 0xfb ? 1 : first === 0xfc ? 3 : first === 0xfd ? 4 : 9;
}

/**
 * Encodes a HandshakeResponse41 (the gateway's upstream login). Optional fields are
 * written when present and their capability bit is set in `r.capabilities`; the
 * caller sets the bits to what the server advertised.
 */
export function encodeHandshakeResponse41(r: HandshakeResponse41): Buffer {
  let caps = r.capabilities >>> 0;
  if (r.database !== undefined) caps |= CLIENT_CONNECT_WITH_DB;
  if (r.authPluginName !== undefined) caps |= CLIENT_PLUGIN_AUTH;
  if (r.connectAttributes !== undefined) caps |= CLIENT_CONNECT_ATTRS;
  caps = (caps | CLIENT_PROTOCOL_41) >>> 0;
  const head = Buffer.alloc(32);
  head.writeUInt32LE(caps, 0);
  head.writeUInt32LE(r.maxPacketSize >>> 0, 4);
  head[8] = r.characterSet & 0xff;
  if (r.mariadbCapabilities !== undefined && !(caps & CLIENT_LONG_PASSWORD)) head.writeUInt32LE(r.mariadbCapabilities >>> 0, 28);
  const parts: Buffer[] = [head, Buffer.from(r.username + '\0', 'utf8')];
  if (caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA) {
    parts.push(writeLenencBytes(r.authResponse));
  } else if (caps & CLIENT_SECURE_CONNECTION) {
    if (r.authResponse.length > 255) {
      throw new RangeError('auth response longer than 255 bytes needs CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA');
    }
    parts.push(Buffer.from([r.authResponse.length]), r.authResponse);
  } else {
    parts.push(r.authResponse, Buffer.from([0]));
  }
  if (caps & CLIENT_CONNECT_WITH_DB) parts.push(Buffer.from((r.database ?? '') + '\0', 'utf8'));
  if (caps & CLIENT_PLUGIN_AUTH) parts.push(Buffer.from((r.authPluginName ?? '') + '\0', 'utf8'));
  if (caps & CLIENT_CONNECT_ATTRS) {
    const attrs = Object.entries(r.connectAttributes ?? {}).map(([k, v]) => Buffer.concat([writeLenencString(k), writeLenencString(v)]));
    const block = Buffer.concat(attrs);
    parts.push(writeLenencInt(block.length), block);
  }
  return Buffer.concat(parts);
}
