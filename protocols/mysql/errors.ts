/**
 * Typed errors of the MySQL codec. Every decoder throws one of these (never a
 * RangeError), so a session can turn any malformed input into a protocol-native
 * ERR packet and close the connection.
 */

export type MysqlDecodeErrorCode =
  | 'truncated' // the payload ended before a field the format requires
  | 'malformed' // a field has a value the format does not allow
  | 'too_long' // a length field exceeds the codec's bound
  | 'unsupported'; // valid protocol the codec deliberately does not handle

/** A payload could not be decoded. `what` names the packet or field being read. */
export class MysqlDecodeError extends Error {
  readonly code: MysqlDecodeErrorCode;
  readonly what: string;
  /** For too_long: the length that was refused, so a caller can explain it in its own terms. */
  readonly length?: number;
  constructor(code: MysqlDecodeErrorCode, what: string, detail: string, length?: number) {
    super(`MySQL protocol: ${what}: ${detail}`);
    this.name = 'MysqlDecodeError';
    this.code = code;
    this.what = what;
    this.length = length;
  }
}

export type PacketErrorCode = 'too_large' | 'bad_sequence';

/** The packet stream itself is wrong (framing level). The connection cannot continue. */
export class PacketError extends Error {
  readonly code: PacketErrorCode;
  constructor(code: PacketErrorCode, detail: string) {
    super(`MySQL packet framing: ${detail}`);
    this.name = 'PacketError';
    this.code = code;
  }
}

export type ResponseErrorCode = 'unexpected_packet' | 'not_expecting' | 'unsupported_command';

/** The server's packets do not fit the response the tracker expects for the command. */
export class ResponseError extends Error {
  readonly code: ResponseErrorCode;
  constructor(code: ResponseErrorCode, detail: string) {
    super(`MySQL response: ${detail}`);
    this.name = 'ResponseError';
    this.code = code;
  }
}
