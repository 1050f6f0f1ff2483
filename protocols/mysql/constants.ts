/**
 * MySQL / MariaDB wire constants: capability flags, command bytes, server status
 * flags and the error codes the gateway itself sends. Values are from the MySQL
 * client/server protocol documentation and MariaDB's mysql_com.h.
 */

/** Largest payload a single packet can carry; a payload of exactly this size means "a continuation follows". */
export const MAX_PACKET_PAYLOAD = 0xffffff;
/** Packet header: 3-byte little-endian payload length + 1-byte sequence id. */
export const PACKET_HEADER_LENGTH = 4;

// ---- Capability flags (32 bits of the wire field) ---------------------------
export const CLIENT_LONG_PASSWORD = 0x00000001; // MariaDB: CLIENT_MYSQL
export const CLIENT_FOUND_ROWS = 0x00000002;
export const CLIENT_LONG_FLAG = 0x00000004;
export const CLIENT_CONNECT_WITH_DB = 0x00000008;
export const CLIENT_NO_SCHEMA = 0x00000010;
export const CLIENT_COMPRESS = 0x00000020;
export const CLIENT_ODBC = 0x00000040;
export const CLIENT_LOCAL_FILES = 0x00000080;
export const CLIENT_IGNORE_SPACE = 0x00000100;
export const CLIENT_PROTOCOL_41 = 0x00000200;
export const CLIENT_INTERACTIVE = 0x00000400;
export const CLIENT_SSL = 0x00000800;
export const CLIENT_IGNORE_SIGPIPE = 0x00001000;
export const CLIENT_TRANSACTIONS = 0x00002000;
export const CLIENT_RESERVED = 0x00004000;
export const CLIENT_SECURE_CONNECTION = 0x00008000;
export const CLIENT_MULTI_STATEMENTS = 0x00010000;
export const CLIENT_MULTI_RESULTS = 0x00020000;
export const CLIENT_PS_MULTI_RESULTS = 0x00040000;
export const CLIENT_PLUGIN_AUTH = 0x00080000;
export const CLIENT_CONNECT_ATTRS = 0x00100000;
export const CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA = 0x00200000;
export const CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS = 0x00400000;
export const CLIENT_SESSION_TRACK = 0x00800000;
export const CLIENT_DEPRECATE_EOF = 0x01000000;
export const CLIENT_OPTIONAL_RESULTSET_METADATA = 0x02000000;
export const CLIENT_ZSTD_COMPRESSION_ALGORITHM = 0x04000000;
export const CLIENT_QUERY_ATTRIBUTES = 0x08000000;
export const CLIENT_MULTI_FACTOR_AUTHENTICATION = 0x10000000;
export const CLIENT_CAPABILITY_EXTENSION = 0x20000000;
export const CLIENT_SSL_VERIFY_SERVER_CERT = 0x40000000;
export const CLIENT_REMEMBER_OPTIONS = 0x80000000;

// MariaDB extended capabilities (the 4 bytes MariaDB reuses from the reserved area).
export const MARIADB_CLIENT_PROGRESS = 0x00000001;
export const MARIADB_CLIENT_STMT_BULK_OPERATIONS = 0x00000004;
export const MARIADB_CLIENT_EXTENDED_METADATA = 0x00000008;
export const MARIADB_CLIENT_CACHE_METADATA = 0x00000010;

/**
 * What the gateway advertises to clients. Never LOCAL_FILES (a server could read
 * the agent's files) nor COMPRESS (the relay scans plain packet headers).
 */
export const GATEWAY_CAPABILITIES =
  (CLIENT_LONG_PASSWORD |
    CLIENT_FOUND_ROWS |
    CLIENT_LONG_FLAG |
    CLIENT_CONNECT_WITH_DB |
    CLIENT_PROTOCOL_41 |
    CLIENT_SSL |
    CLIENT_TRANSACTIONS |
    CLIENT_SECURE_CONNECTION |
    CLIENT_MULTI_STATEMENTS |
    CLIENT_MULTI_RESULTS |
    CLIENT_PS_MULTI_RESULTS |
    CLIENT_PLUGIN_AUTH |
    CLIENT_CONNECT_ATTRS |
    CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA |
    CLIENT_SESSION_TRACK |
    CLIENT_DEPRECATE_EOF) >>>
  0;

/**
 * Capability bits that change the format of packets after login. A pooled upstream
 * session can only be relayed to a client whose bits here are identical.
 */
export const FORMAT_CAPABILITIES =
  (CLIENT_FOUND_ROWS |
    CLIENT_LONG_FLAG |
    CLIENT_NO_SCHEMA |
    CLIENT_PROTOCOL_41 |
    CLIENT_MULTI_STATEMENTS |
    CLIENT_MULTI_RESULTS |
    CLIENT_PS_MULTI_RESULTS |
    CLIENT_SESSION_TRACK |
    CLIENT_DEPRECATE_EOF |
    CLIENT_OPTIONAL_RESULTSET_METADATA |
    CLIENT_QUERY_ATTRIBUTES |
    CLIENT_IGNORE_SPACE |
    CLIENT_LOCAL_FILES |
    CLIENT_COMPRESS) >>>
  0;

/** The format-affecting subset of a capability word (the pool key part). */
export function formatCapabilities(capabilities: number): number {
  return (capabilities & FORMAT_CAPABILITIES) >>> 0;
}

// ---- Command bytes ----------------------------------------------------------
export const COM_SLEEP = 0x00;
export const COM_QUIT = 0x01;
export const COM_INIT_DB = 0x02;
export const COM_QUERY = 0x03;
export const COM_FIELD_LIST = 0x04;
export const COM_CREATE_DB = 0x05;
export const COM_DROP_DB = 0x06;
export const COM_REFRESH = 0x07;
export const COM_SHUTDOWN = 0x08;
export const COM_STATISTICS = 0x09;
export const COM_PROCESS_INFO = 0x0a;
export const COM_CONNECT = 0x0b;
export const COM_PROCESS_KILL = 0x0c;
export const COM_DEBUG = 0x0d;
export const COM_PING = 0x0e;
export const COM_TIME = 0x0f;
export const COM_DELAYED_INSERT = 0x10;
export const COM_CHANGE_USER = 0x11;
export const COM_BINLOG_DUMP = 0x12;
export const COM_TABLE_DUMP = 0x13;
export const COM_CONNECT_OUT = 0x14;
export const COM_REGISTER_SLAVE = 0x15;
export const COM_STMT_PREPARE = 0x16;
export const COM_STMT_EXECUTE = 0x17;
export const COM_STMT_SEND_LONG_DATA = 0x18;
export const COM_STMT_CLOSE = 0x19;
export const COM_STMT_RESET = 0x1a;
export const COM_SET_OPTION = 0x1b;
export const COM_STMT_FETCH = 0x1c;
export const COM_DAEMON = 0x1d;
export const COM_BINLOG_DUMP_GTID = 0x1e;
export const COM_RESET_CONNECTION = 0x1f;
/** MariaDB bulk execute (only with MARIADB_CLIENT_STMT_BULK_OPERATIONS). */
export const COM_STMT_BULK_EXECUTE = 0xfa;

export const COMMAND_NAMES: Readonly<Record<number, string>> = {
  [COM_SLEEP]: 'COM_SLEEP',
  [COM_QUIT]: 'COM_QUIT',
  [COM_INIT_DB]: 'COM_INIT_DB',
  [COM_QUERY]: 'COM_QUERY',
  [COM_FIELD_LIST]: 'COM_FIELD_LIST',
  [COM_CREATE_DB]: 'COM_CREATE_DB',
  [COM_DROP_DB]: 'COM_DROP_DB',
  [COM_REFRESH]: 'COM_REFRESH',
  [COM_SHUTDOWN]: 'COM_SHUTDOWN',
  [COM_STATISTICS]: 'COM_STATISTICS',
  [COM_PROCESS_INFO]: 'COM_PROCESS_INFO',
  [COM_CONNECT]: 'COM_CONNECT',
  [COM_PROCESS_KILL]: 'COM_PROCESS_KILL',
  [COM_DEBUG]: 'COM_DEBUG',
  [COM_PING]: 'COM_PING',
  [COM_TIME]: 'COM_TIME',
  [COM_DELAYED_INSERT]: 'COM_DELAYED_INSERT',
  [COM_CHANGE_USER]: 'COM_CHANGE_USER',
  [COM_BINLOG_DUMP]: 'COM_BINLOG_DUMP',
  [COM_TABLE_DUMP]: 'COM_TABLE_DUMP',
  [COM_CONNECT_OUT]: 'COM_CONNECT_OUT',
  [COM_REGISTER_SLAVE]: 'COM_REGISTER_SLAVE',
  [COM_STMT_PREPARE]: 'COM_STMT_PREPARE',
  [COM_STMT_EXECUTE]: 'COM_STMT_EXECUTE',
  [COM_STMT_SEND_LONG_DATA]: 'COM_STMT_SEND_LONG_DATA',
  [COM_STMT_CLOSE]: 'COM_STMT_CLOSE',
  [COM_STMT_RESET]: 'COM_STMT_RESET',
  [COM_SET_OPTION]: 'COM_SET_OPTION',
  [COM_STMT_FETCH]: 'COM_STMT_FETCH',
  [COM_DAEMON]: 'COM_DAEMON',
  [COM_BINLOG_DUMP_GTID]: 'COM_BINLOG_DUMP_GTID',
  [COM_RESET_CONNECTION]: 'COM_RESET_CONNECTION',
  [COM_STMT_BULK_EXECUTE]: 'COM_STMT_BULK_EXECUTE',
};

/** COM_SET_OPTION values. */
export const MYSQL_OPTION_MULTI_STATEMENTS_ON = 0;
export const MYSQL_OPTION_MULTI_STATEMENTS_OFF = 1;

/** COM_STMT_EXECUTE flags. */
export const CURSOR_TYPE_NO_CURSOR = 0x00;
export const CURSOR_TYPE_READ_ONLY = 0x01;

// ---- Server status flags ----------------------------------------------------
export const SERVER_STATUS_IN_TRANS = 0x0001;
export const SERVER_STATUS_AUTOCOMMIT = 0x0002;
export const SERVER_MORE_RESULTS_EXISTS = 0x0008;
export const SERVER_QUERY_NO_GOOD_INDEX_USED = 0x0010;
export const SERVER_QUERY_NO_INDEX_USED = 0x0020;
export const SERVER_STATUS_CURSOR_EXISTS = 0x0040;
export const SERVER_STATUS_LAST_ROW_SENT = 0x0080;
export const SERVER_STATUS_DB_DROPPED = 0x0100;
export const SERVER_STATUS_NO_BACKSLASH_ESCAPES = 0x0200;
export const SERVER_STATUS_METADATA_CHANGED = 0x0400;
export const SERVER_QUERY_WAS_SLOW = 0x0800;
export const SERVER_PS_OUT_PARAMS = 0x1000;
export const SERVER_STATUS_IN_TRANS_READONLY = 0x2000;
export const SERVER_SESSION_STATE_CHANGED = 0x4000;

// ---- Packet header bytes ----------------------------------------------------
export const OK_HEADER = 0x00;
export const AUTH_MORE_DATA_HEADER = 0x01;
export const LOCAL_INFILE_HEADER = 0xfb;
export const EOF_HEADER = 0xfe;
export const AUTH_SWITCH_HEADER = 0xfe;
export const ERR_HEADER = 0xff;
export const HANDSHAKE_V10 = 0x0a;

// ---- Auth plugin names ------------------------------------------------------
export const MYSQL_NATIVE_PASSWORD = 'mysql_native_password';
export const MYSQL_CLEAR_PASSWORD = 'mysql_clear_password';
export const CACHING_SHA2_PASSWORD = 'caching_sha2_password';
/** caching_sha2_password AuthMoreData statuses. */
export const CACHING_SHA2_REQUEST_PUBLIC_KEY = 0x02;
export const CACHING_SHA2_FAST_AUTH_SUCCESS = 0x03;
export const CACHING_SHA2_PERFORM_FULL_AUTH = 0x04;

/** utf8mb4_general_ci: the collation the gateway announces and uses upstream by default. */
export const UTF8MB4_GENERAL_CI = 45;

// ---- Error codes the gateway sends (code + SQLSTATE) -------------------------
export interface ErrorCodeDef {
  readonly code: number;
  readonly sqlState: string;
}
export const ErrorCode = {
  ACCESS_DENIED: { code: 1045, sqlState: '28000' }, // ER_ACCESS_DENIED_ERROR
  DB_ACCESS_DENIED: { code: 1044, sqlState: '42000' }, // ER_DBACCESS_DENIED_ERROR
  UNKNOWN_DATABASE: { code: 1049, sqlState: '42000' }, // ER_BAD_DB_ERROR
  TOO_MANY_CONNECTIONS: { code: 1040, sqlState: '08004' }, // ER_CON_COUNT_ERROR
  UNKNOWN_COMMAND: { code: 1047, sqlState: '08S01' }, // ER_UNKNOWN_COM_ERROR
  NET_READ_ERROR: { code: 1158, sqlState: '08S01' }, // ER_NET_READ_ERROR
  BAD_HANDSHAKE: { code: 1043, sqlState: '08S01' }, // ER_HANDSHAKE_ERROR
  CONNECTION_KILLED: { code: 1927, sqlState: '70100' }, // ER_CONNECTION_KILLED (MariaDB)
  TOO_MANY_USER_CONNECTIONS: { code: 1203, sqlState: '42000' }, // ER_TOO_MANY_USER_CONNECTIONS
  CLIENT_INTERACTION_TIMEOUT: { code: 4031, sqlState: 'HY000' }, // ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8.0.24+)
} as const satisfies Record<string, ErrorCodeDef>;
