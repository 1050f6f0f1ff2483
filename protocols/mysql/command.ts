/**
 * Command phase: what a client asks for. decodeCommand works on a captured prefix
 * of the payload (the relay keeps a bounded prefix of each command), so query text
 * may be truncated; `truncated` says so.
 */
import {
  COMMAND_NAMES,
  COM_CHANGE_USER,
  COM_FIELD_LIST,
  COM_INIT_DB,
  COM_PROCESS_KILL,
  COM_QUERY,
  COM_SET_OPTION,
  COM_STMT_CLOSE,
  COM_STMT_EXECUTE,
  COM_STMT_FETCH,
  COM_STMT_PREPARE,
  COM_STMT_RESET,
  COM_STMT_SEND_LONG_DATA,
} from './constants';
import { MysqlDecodeError } from './errors';
import { MAX_NAME_BYTES } from './handshake';
import { PayloadReader } from './lenenc';

export interface Command {
  command: number;
  /** COM_QUERY etc., or "COM_0x.." for unknown bytes. */
  name: string;
  /** SQL text of COM_QUERY / COM_STMT_PREPARE (possibly cut at the captured prefix). */
  query?: string;
  /** COM_INIT_DB schema. */
  schema?: string;
  /** COM_STMT_EXECUTE / CLOSE / RESET / FETCH / SEND_LONG_DATA statement id. */
  statementId?: number;
  /** COM_STMT_EXECUTE cursor flags. */
  cursorFlags?: number;
  /** COM_STMT_FETCH row count. */
  fetchRows?: number;
  /** COM_SET_OPTION value. */
  option?: number;
  /** COM_PROCESS_KILL connection id. */
  processId?: number;
  /** COM_CHANGE_USER user name. */
  username?: string;
  /** COM_FIELD_LIST table name. */
  table?: string;
  /** True when `payloadLength` exceeds the captured bytes, so text fields are cut. */
  truncated: boolean;
}

export function commandName(command: number): string {
  return COMMAND_NAMES[command] ?? `COM_0x${command.toString(16).padStart(2, '0')}`;
}

/** Decodes the first packet of a command. `payloadLength` is the announced length when `payload` is a prefix. */
export function decodeCommand(payload: Buffer, payloadLength = payload.length): Command {
  if (payload.length === 0) {
    throw new MysqlDecodeError('truncated', 'command', 'an empty packet carries no command byte');
  }
  const command = payload[0];
  const out: Command = { command, name: commandName(command), truncated: payloadLength > payload.length };
  const r = new PayloadReader(payload, out.name, 1);
  switch (command) {
    case COM_QUERY:
    case COM_STMT_PREPARE:
      // The text after the command byte, decoded in place. A cut may fall inside a
      // multi-byte character: toString maps it to U+FFFD.
      out.query = payload.toString('utf8', 1);
      break;
    case COM_INIT_DB:
      out.schema = payload.toString('utf8', 1);
      break;
    case COM_STMT_EXECUTE:
      out.statementId = r.u32('statement id');
      out.cursorFlags = r.u8('flags');
      break;
    case COM_STMT_FETCH:
      out.statementId = r.u32('statement id');
      out.fetchRows = r.u32('row count');
      break;
    case COM_STMT_CLOSE:
    case COM_STMT_RESET:
    case COM_STMT_SEND_LONG_DATA:
      out.statementId = r.u32('statement id');
      break;
    case COM_SET_OPTION:
      out.option = r.u16('option');
      break;
    case COM_PROCESS_KILL:
      out.processId = r.u32('connection id');
      break;
    case COM_CHANGE_USER:
      out.username = r.nulString('user', MAX_NAME_BYTES, true);
      break;
    case COM_FIELD_LIST:
      out.table = r.nulString('table', MAX_NAME_BYTES, true);
      break;
    default:
      break;
  }
  return out;
}

export function encodeQuery(sql: string): Buffer {
  return Buffer.concat([Buffer.from([COM_QUERY]), Buffer.from(sql, 'utf8')]);
}

export function encodeInitDb(schema: string): Buffer {
  return Buffer.concat([Buffer.from([COM_INIT_DB]), Buffer.from(schema, 'utf8')]);
}

export function encodeStmtPrepare(sql: string): Buffer {
  return Buffer.concat([Buffer.from([COM_STMT_PREPARE]), Buffer.from(sql, 'utf8')]);
}

/** A command with no arguments (COM_PING, COM_QUIT, COM_RESET_CONNECTION, COM_STATISTICS...). */
export function encodeSimpleCommand(command: number): Buffer {
  return Buffer.from([command & 0xff]);
}

/** A command whose only argument is a 4-byte id (COM_STMT_CLOSE, COM_STMT_RESET, COM_PROCESS_KILL). */
export function encodeIdCommand(command: number, id: number): Buffer {
  const b = Buffer.alloc(5);
  b[0] = command & 0xff;
  b.writeUInt32LE(id >>> 0, 1);
  return b;
}
