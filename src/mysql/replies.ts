import { CLIENT_PROTOCOL_41, CLIENT_SESSION_TRACK, CLIENT_TRANSACTIONS, SERVER_MORE_RESULTS_EXISTS, SERVER_SESSION_STATE_CHANGED, type ErrorCodeDef } from '../../protocols/mysql/constants';
import { writeLenencInt, writeLenencString } from '../../protocols/mysql/lenenc';
import { encodeErr, encodeOk } from '../../protocols/mysql/packets';

/** Packets the gateway writes itself (answers to intercepted commands, refusals). */

/** ER_NO_DB_ERROR: a command that needs a database before one was chosen. */
export const NO_DATABASE_SELECTED: ErrorCodeDef = { code: 1046, sqlState: '3D000' };
/** ER_NO_SUCH_THREAD: KILL of an id that is not (the caller's) session. */
export const UNKNOWN_THREAD: ErrorCodeDef = { code: 1094, sqlState: 'HY000' };
/** ER_UNKNOWN_ERROR: the gateway could not do what was asked (message says why). */
export const GATEWAY_ERROR: ErrorCodeDef = { code: 1105, sqlState: 'HY000' };
/** ER_SERVER_SHUTDOWN: the gateway is stopping. */
export const SERVER_SHUTDOWN: ErrorCodeDef = { code: 1053, sqlState: '08S01' };
/** Session-state-change type of a schema change (SESSION_TRACK_SCHEMA). */
const SESSION_TRACK_SCHEMA = 0x01;

/** Status flags the gateway repeats in its own OK packets: the transaction state, never "more results". */
export function ownStatusFlags(flags: number): number {
  return flags & ~(SERVER_MORE_RESULTS_EXISTS | SERVER_SESSION_STATE_CHANGED) & 0xffff;
}

export function errPayload(def: ErrorCodeDef, message: string): Buffer {
  return encodeErr({ code: def.code, sqlState: def.sqlState, message });
}

/** Plain OK payloads by status flags and the capability bits that shape an OK; there are a handful in use. */
const okPayloads = new Map<number, Buffer>();
const OK_CACHE_LIMIT = 256;

/**
 * A plain OK (0 rows, no info) with the session's status flags. The payload is shared
 * between calls (it is built once per status and capability layout): callers must not
 * change it, only frame or send it.
 */
export function okPayload(statusFlags: number, capabilities: number): Buffer {
  const status = ownStatusFlags(statusFlags);
  const key = (status << 3) | (capabilities & CLIENT_PROTOCOL_41 ? 4 : 0) | (capabilities & CLIENT_TRANSACTIONS ? 2 : 0) | (capabilities & CLIENT_SESSION_TRACK ? 1 : 0);
  let payload = okPayloads.get(key);
  if (payload === undefined) {
    if (okPayloads.size >= OK_CACHE_LIMIT) okPayloads.clear();
    payload = encodeOk({ statusFlags: status }, capabilities);
    okPayloads.set(key, payload);
  }
  return payload;
}

/**
 * The OK for a successful USE / COM_INIT_DB. With session tracking it reports the schema
 * change under the client's alias, so drivers that follow it (libmariadb) remember the
 * alias, not the upstream's real database name, and reconnect to the right place.
 */
export function schemaChangedOk(alias: string, statusFlags: number, capabilities: number): Buffer {
  if (!(capabilities & CLIENT_SESSION_TRACK)) return okPayload(statusFlags, capabilities);
  const data = writeLenencString(alias);
  const change = Buffer.concat([Buffer.from([SESSION_TRACK_SCHEMA]), writeLenencInt(data.length), data]);
  return encodeOk({ statusFlags: ownStatusFlags(statusFlags), sessionStateChanges: change }, capabilities);
}
