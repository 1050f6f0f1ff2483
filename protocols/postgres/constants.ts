/**
 * PostgreSQL wire-protocol constants (protocol 3.x).
 * Numbers come from the PostgreSQL "Frontend/Backend Protocol" chapter and src/include/libpq/pqcomm.h.
 */

/** Protocol 3.0 as sent in a StartupMessage: major in the high 16 bits, minor in the low 16. */
export const PROTOCOL_VERSION_3_0 = 196608; // (3 << 16)
/** Protocol 3.2 (PostgreSQL 18: variable-length cancel keys). */
export const PROTOCOL_VERSION_3_2 = (3 << 16) | 2;

/** Special "protocol versions" that mark the non-startup packets sent in startup framing. */
export const SSL_REQUEST_CODE = 80877103; // 1234 << 16 | 5679
export const GSSENC_REQUEST_CODE = 80877104; // 1234 << 16 | 5680
export const CANCEL_REQUEST_CODE = 80877102; // 1234 << 16 | 5678

/** PostgreSQL's own cap on a startup packet, length field included (postmaster.c). */
export const MAX_STARTUP_PACKET_LENGTH = 10000;
/** Smallest startup packet: int32 length + int32 code. */
export const MIN_STARTUP_PACKET_LENGTH = 8;

/** Cancel keys: 4 bytes on protocol 3.0, up to 256 on 3.2 (PostgreSQL 18). */
export const MIN_CANCEL_KEY_LENGTH = 4;
export const MAX_CANCEL_KEY_LENGTH = 256;

/** SQLSTATE codes the gateway emits (Appendix A of the PostgreSQL manual). */
export const SqlState = {
  INVALID_AUTHORIZATION_SPECIFICATION: '28000',
  INVALID_PASSWORD: '28P01',
  INVALID_CATALOG_NAME: '3D000',
  PROTOCOL_VIOLATION: '08P01',
  TOO_MANY_CONNECTIONS: '53300',
  ADMIN_SHUTDOWN: '57P01',
  CONNECTION_FAILURE: '08006',
  CONNECTION_EXCEPTION: '08000',
  SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION: '08001',
  SQLSERVER_REJECTED_ESTABLISHMENT_OF_SQLCONNECTION: '08004',
  FEATURE_NOT_SUPPORTED: '0A000',
  CANNOT_CONNECT_NOW: '57P03',
  QUERY_CANCELED: '57014',
  IDLE_SESSION_TIMEOUT: '57P05',
  IDLE_IN_TRANSACTION_SESSION_TIMEOUT: '25P03',
  INTERNAL_ERROR: 'XX000',
  INSUFFICIENT_PRIVILEGE: '42501',
  INVALID_ROLE_SPECIFICATION: '28000',
  CONFIGURATION_LIMIT_EXCEEDED: '53400',
  PROGRAM_LIMIT_EXCEEDED: '54000',
  DIVISION_BY_ZERO: '22012',
} as const;
export type SqlStateCode = (typeof SqlState)[keyof typeof SqlState];

/** Type bytes of messages a frontend (client) sends after startup. */
export const FrontendType = {
  Query: 0x51, // 'Q'
  Parse: 0x50, // 'P'
  Bind: 0x42, // 'B'
  Describe: 0x44, // 'D'
  Execute: 0x45, // 'E'
  Close: 0x43, // 'C'
  Flush: 0x48, // 'H'
  Sync: 0x53, // 'S'
  Terminate: 0x58, // 'X'
  FunctionCall: 0x46, // 'F'
  CopyData: 0x64, // 'd'
  CopyDone: 0x63, // 'c'
  CopyFail: 0x66, // 'f'
  /** PasswordMessage, SASLInitialResponse, SASLResponse and GSSResponse all use 'p'. */
  PasswordMessage: 0x70, // 'p'
} as const;

/** Type bytes of messages a backend (server) sends. Some share a byte with a frontend type. */
export const BackendType = {
  ReadyForQuery: 0x5a, // 'Z'
  CommandComplete: 0x43, // 'C'
  ErrorResponse: 0x45, // 'E'
  NoticeResponse: 0x4e, // 'N'
  ParameterStatus: 0x53, // 'S'
  BackendKeyData: 0x4b, // 'K'
  Authentication: 0x52, // 'R'
  CopyInResponse: 0x47, // 'G'
  CopyOutResponse: 0x48, // 'H'
  CopyBothResponse: 0x57, // 'W'
  CopyData: 0x64, // 'd'
  CopyDone: 0x63, // 'c'
  DataRow: 0x44, // 'D'
  RowDescription: 0x54, // 'T'
  EmptyQueryResponse: 0x49, // 'I'
  ParseComplete: 0x31, // '1'
  BindComplete: 0x32, // '2'
  CloseComplete: 0x33, // '3'
  NoData: 0x6e, // 'n'
  PortalSuspended: 0x73, // 's'
  ParameterDescription: 0x74, // 't'
  NegotiateProtocolVersion: 0x76, // 'v'
  NotificationResponse: 0x41, // 'A'
  FunctionCallResponse: 0x56, // 'V'
} as const;

/** Sub-codes of the Authentication ('R') message. */
export const AuthCode = {
  Ok: 0,
  CleartextPassword: 3,
  MD5Password: 5,
  SASL: 10,
  SASLContinue: 11,
  SASLFinal: 12,
} as const;

/** Transaction status byte carried by ReadyForQuery. */
export type TransactionStatus = 'I' | 'T' | 'E';
