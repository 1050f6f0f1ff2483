import { CLIENT_SESSION_TRACK, SERVER_MORE_RESULTS_EXISTS, SERVER_SESSION_STATE_CHANGED, type ErrorCodeDef } from '../../protocols/mysql/constants';
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

export function okPayload(statusFlags: number, capabilities: number): Buffer {
  return encodeOk({ statusFlags: ownStatusFlags(statusFlags) }, capabilities);
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
