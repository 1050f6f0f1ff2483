/**
 * Follows the server's packets for one command so the relay knows when the
 * response is complete (the pooled connection is idle again) and what came of it.
 * It reads only packet prefixes: pair it with a PacketFramer whose capture is
 * `captureForResponse` (or anything keeping at least that much).
 */
import {
  CLIENT_DEPRECATE_EOF,
  COM_BINLOG_DUMP,
  COM_BINLOG_DUMP_GTID,
  COM_CHANGE_USER,
  COM_CONNECT_OUT,
  COM_FIELD_LIST,
  COM_QUIT,
  COM_REGISTER_SLAVE,
  COM_STATISTICS,
  COM_STMT_CLOSE,
  COM_STMT_EXECUTE,
  COM_STMT_FETCH,
  COM_STMT_PREPARE,
  COM_STMT_SEND_LONG_DATA,
  COM_TABLE_DUMP,
  CURSOR_TYPE_NO_CURSOR,
  EOF_HEADER,
  ERR_HEADER,
  LOCAL_INFILE_HEADER,
  MAX_PACKET_PAYLOAD,
  OK_HEADER,
  SERVER_MORE_RESULTS_EXISTS,
  SERVER_STATUS_CURSOR_EXISTS,
} from './constants';
import { commandName } from './command';
import { ResponseError } from './errors';
import { readLenencNumber } from './lenenc';
import { EOF_MAX_LENGTH, decodeEof, decodeErr, decodeOk, isEof } from './packets';

/** Bytes of each response packet the tracker needs (OK info and ERR messages included, to a point). */
export const RESPONSE_CAPTURE_BYTES = 512;
/** Most columns a result set may announce (MySQL/MariaDB allow 4096). */
export const MAX_COLUMNS = 65535;
/** Result summaries kept per response; more are counted in `resultCount` only. */
export const MAX_RESULTS_KEPT = 64;

/** A `PacketFramer` capture for server packets in the command phase. */
export function captureForResponse(): number {
  return RESPONSE_CAPTURE_BYTES;
}

export type ResultSummary =
  | { kind: 'ok'; affectedRows: bigint; lastInsertId: bigint; statusFlags: number; warnings: number; info: string }
  | { kind: 'rows'; binary: boolean; columns: number; rows: number; statusFlags: number; warnings: number }
  | { kind: 'prepared'; statementId: number; columns: number; params: number; warnings: number }
  | { kind: 'eof'; statusFlags: number; warnings: number }
  | { kind: 'info'; text: string }
  | { kind: 'error'; code: number; sqlState?: string; message: string };

export interface ResponseOutcome {
  /** The command byte, or -1 for an unsolicited ERR (e.g. the server killed the connection). */
  command: number;
  /** One entry per result (multi-statement / CALL responses have several), at most MAX_RESULTS_KEPT. */
  results: ResultSummary[];
  resultCount: number;
  /** The ERR that ended the response, if any. */
  error?: { code: number; sqlState?: string; message: string };
  /** Status flags of the last OK/EOF seen (transaction state for the pool); undefined if none carried them. */
  statusFlags?: number;
  /** Total rows over all result sets. */
  rows: number;
}

type State =
  | { s: 'idle' }
  | { s: 'first' } // OK / ERR / result set header
  | { s: 'columns'; left: number; columns: number }
  | { s: 'columnsEof'; columns: number }
  | { s: 'rows'; columns: number; rows: number }
  | { s: 'prepare'; part: 'params' | 'columns'; left: number; eof: boolean; summary: Extract<ResultSummary, { kind: 'prepared' }> }
  | { s: 'single' } // exactly one packet: OK / ERR / EOF
  | { s: 'statistics' } // one packet of text
  | { s: 'fieldList' } // column definitions until EOF or ERR
  | { s: 'auth' }; // COM_CHANGE_USER: auth exchange until OK or ERR

export type TrackResult = 'more' | 'done';

export class ResponseTracker {
  private readonly deprecateEof: boolean;
  private state: State = { s: 'idle' };
  private command = -1;
  private binary = false;
  private cursor = false;
  private continuationNext = false;
  private current: ResponseOutcome | undefined;

  /** `capabilities` are the negotiated ones (client ∩ server) of the connection. */
  constructor(readonly capabilities: number) {
    this.deprecateEof = (capabilities & CLIENT_DEPRECATE_EOF) !== 0;
  }

  /** True while a response is outstanding. */
  get busy(): boolean {
    return this.state.s !== 'idle';
  }

  /** The outcome of the current (or last completed) response. */
  get outcome(): ResponseOutcome | undefined {
    return this.current;
  }

  /**
   * Starts following the response to `command`. Returns 'done' for commands the
   * server does not answer (COM_QUIT, COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA).
   * `opts.cursor`: COM_STMT_EXECUTE asked for a cursor (the rows come via COM_STMT_FETCH).
   */
  begin(command: number, opts: { cursor?: boolean } = {}): TrackResult {
    if (this.busy) {
      throw new ResponseError(
        'unexpected_packet',
        `${commandName(command)} sent while the response to ${commandName(this.command)} is still outstanding`,
      );
    }
    this.command = command;
    this.binary = command === COM_STMT_EXECUTE || command === COM_STMT_FETCH;
    this.cursor = command === COM_STMT_EXECUTE && !!opts.cursor;
    this.continuationNext = false;
    this.current = { command, results: [], resultCount: 0, rows: 0 };
    switch (command) {
      case COM_QUIT:
      case COM_STMT_CLOSE:
      case COM_STMT_SEND_LONG_DATA:
        return 'done';
      case COM_BINLOG_DUMP:
      case COM_BINLOG_DUMP_GTID:
      case COM_REGISTER_SLAVE:
      case COM_TABLE_DUMP:
      case COM_CONNECT_OUT:
        throw new ResponseError('unsupported_command', `${commandName(command)} (replication) cannot be relayed through the gateway`);
      case COM_STMT_PREPARE:
      case COM_STMT_EXECUTE:
        this.state = { s: 'first' };
        break;
      case COM_STMT_FETCH:
        this.state = { s: 'rows', columns: 0, rows: 0 };
        break;
      case COM_STATISTICS:
        this.state = { s: 'statistics' };
        break;
      case COM_FIELD_LIST:
        this.state = { s: 'fieldList' };
        break;
      case COM_CHANGE_USER:
        this.state = { s: 'auth' };
        break;
      default:
        this.state = this.expectsResultSet(command) ? { s: 'first' } : { s: 'single' };
    }
    return 'more';
  }

  /** Commands whose response may be a result set (COM_QUERY and the like). */
  private expectsResultSet(command: number): boolean {
    return command === 0x03 /* COM_QUERY */ || command === 0xfa /* COM_STMT_BULK_EXECUTE */;
  }

  /** Convenience for cursor detection: pass the COM_STMT_EXECUTE flags byte. */
  static isCursorFlags(flags: number | undefined): boolean {
    return flags !== undefined && (flags & 0x0f) !== CURSOR_TYPE_NO_CURSOR;
  }

  /**
   * Feeds one server packet (its captured prefix and announced length). Returns
   * 'done' when the response is complete. Throws ResponseError / MysqlDecodeError
   * when the packet cannot belong to the response; the connection is then unusable.
   */
  onPacket(payloadPrefix: Buffer, payloadLength: number): TrackResult {
    return this.onPacketAt(payloadPrefix, 0, payloadPrefix.length, payloadLength);
  }

  /**
   * onPacket() for a prefix that lies in `data[start, end)` (as PacketFramer.scan hands it
   * out): most packets are judged by their first byte and length, and a view is made only
   * for the few that are decoded (OK, EOF, ERR, PREPARE OK).
   */
  onPacketAt(data: Buffer, start: number, end: number, payloadLength: number): TrackResult {
    if (this.continuationNext) {
      // The rest of a payload split at 16 MiB: never a header of its own.
      this.continuationNext = payloadLength === MAX_PACKET_PAYLOAD;
      if (this.state.s === 'idle') throw new ResponseError('not_expecting', 'a continuation packet arrived after the response ended');
      return 'more';
    }
    this.continuationNext = payloadLength === MAX_PACKET_PAYLOAD;
    if (end <= start && payloadLength > 0) {
      throw new ResponseError('unexpected_packet', 'the framer kept no bytes of a response packet; capture at least RESPONSE_CAPTURE_BYTES');
    }
    const first = payloadLength === 0 ? -1 : data[start];
    const st = this.state;
    switch (st.s) {
      case 'idle':
        if (first === ERR_HEADER) {
          // Unsolicited ERR: the server is closing this connection (kill, shutdown, timeout).
          this.command = -1;
          this.current = { command: -1, results: [], resultCount: 0, rows: 0 };
          return this.finishError(viewOf(data, start, end));
        }
        throw new ResponseError('not_expecting', `a server packet (first byte ${hex(first)}) arrived while no command was outstanding`);
      case 'single':
        if (first === ERR_HEADER) return this.finishError(viewOf(data, start, end));
        if (first === OK_HEADER) return this.okResult(viewOf(data, start, end));
        if (isEofPacket(first, payloadLength)) {
          const eof = decodeEof(viewOf(data, start, end), this.capabilities);
          this.addResult({ kind: 'eof', statusFlags: eof.statusFlags, warnings: eof.warnings }, eof.statusFlags);
          return this.finish();
        }
        throw this.unexpected(first, 'an OK, EOF or ERR packet');
      case 'statistics':
        if (first === ERR_HEADER) return this.finishError(viewOf(data, start, end));
        this.addResult({ kind: 'info', text: data.toString('utf8', start, end) });
        return this.finish();
      case 'auth':
        if (first === ERR_HEADER) return this.finishError(viewOf(data, start, end));
        if (first === OK_HEADER) return this.okResult(viewOf(data, start, end));
        return 'more'; // AuthSwitchRequest / AuthMoreData: the client answers, the exchange goes on
      case 'fieldList':
        if (first === ERR_HEADER) return this.finishError(viewOf(data, start, end));
        if (first === EOF_HEADER && payloadLength < MAX_PACKET_PAYLOAD && (this.deprecateEof || isEofPacket(first, payloadLength))) {
          const flags = this.terminatorFlags(viewOf(data, start, end), payloadLength);
          this.addResult({ kind: 'eof', statusFlags: flags.statusFlags, warnings: flags.warnings }, flags.statusFlags);
          return this.finish();
        }
        return 'more';
      case 'first':
        return this.onFirst(first, data, start, end, payloadLength);
      case 'columns':
        if (first === ERR_HEADER) return this.finishError(viewOf(data, start, end));
        if (st.left > 1) {
          st.left--;
          return 'more';
        }
        this.state = this.deprecateEof ? this.afterColumns(st.columns) : { s: 'columnsEof', columns: st.columns };
        return this.state.s === 'idle' ? 'done' : 'more';
      case 'columnsEof': {
        if (first === ERR_HEADER) return this.finishError(viewOf(data, start, end));
        if (!isEofPacket(first, payloadLength)) throw this.unexpected(first, 'the EOF packet after the column definitions');
        if (this.cursor) {
          const eof = decodeEof(viewOf(data, start, end), this.capabilities);
          if (eof.statusFlags & SERVER_STATUS_CURSOR_EXISTS) {
            // Rows will come through COM_STMT_FETCH.
            return this.endResult({ kind: 'rows', binary: true, columns: st.columns, rows: 0, statusFlags: eof.statusFlags, warnings: eof.warnings });
          }
        }
        this.state = { s: 'rows', columns: st.columns, rows: 0 };
        return 'more';
      }
      case 'rows':
        if (first === ERR_HEADER) return this.finishError(viewOf(data, start, end));
        if (this.isTerminator(first, payloadLength)) {
          const flags = this.terminatorFlags(viewOf(data, start, end), payloadLength);
          // Named fields, not a spread: one object shape whether an EOF or an OK ended the rows, and no
          // property-by-property copy in V8's runtime for every result set.
          return this.endResult({ kind: 'rows', binary: this.binary, columns: st.columns, rows: st.rows, statusFlags: flags.statusFlags, warnings: flags.warnings });
        }
        st.rows++;
        if (this.current) this.current.rows++;
        return 'more';
      case 'prepare':
        return this.onPrepare(st, first, data, start, end, payloadLength);
    }
  }

  private onFirst(first: number, data: Buffer, start: number, end: number, payloadLength: number): TrackResult {
    if (first === ERR_HEADER) return this.finishError(viewOf(data, start, end));
    if (this.command === COM_STMT_PREPARE) {
      if (first !== OK_HEADER || payloadLength < 12) throw this.unexpected(first, 'a COM_STMT_PREPARE OK (12 bytes) or ERR');
      const payload = viewOf(data, start, end);
      const summary = {
        kind: 'prepared' as const,
        statementId: payload.readUInt32LE(1),
        columns: payload.readUInt16LE(5),
        params: payload.readUInt16LE(7),
        warnings: payload.readUInt16LE(10),
      };
      return this.nextPreparePart({ s: 'prepare', part: 'params', left: summary.params, eof: false, summary });
    }
    if (first === OK_HEADER) return this.okResult(viewOf(data, start, end));
    if (first === LOCAL_INFILE_HEADER) {
      throw new ResponseError(
        'unexpected_packet',
        'the server asked for LOAD DATA LOCAL INFILE although CLIENT_LOCAL_FILES was not negotiated; the connection must be closed',
      );
    }
    if (first === EOF_HEADER) throw this.unexpected(first, 'an OK, ERR or result set header');
    // A count below 251 is its own one-byte length-encoded integer; longer forms go through the reader.
    const columns = first >= 0 && first < 0xfb ? first : readLenencNumber(viewOf(data, start, end), 0, MAX_COLUMNS, 'result set column count').value;
    if (columns === 0) throw this.unexpected(first, 'a column count of at least 1');
    this.state = { s: 'columns', left: columns, columns };
    return 'more';
  }

  private onPrepare(st: Extract<State, { s: 'prepare' }>, first: number, data: Buffer, start: number, end: number, payloadLength: number): TrackResult {
    if (first === ERR_HEADER) return this.finishError(viewOf(data, start, end));
    if (st.eof) {
      if (!isEofPacket(first, payloadLength)) throw this.unexpected(first, `the EOF packet after the ${st.part} definitions`);
      st.eof = false;
      if (st.part === 'params') return this.nextPreparePart({ ...st, part: 'columns', left: st.summary.columns });
      return this.endPrepare(st);
    }
    st.left--;
    if (st.left > 0) return 'more';
    if (!this.deprecateEof) {
      st.eof = true;
      return 'more';
    }
    if (st.part === 'params') return this.nextPreparePart({ ...st, part: 'columns', left: st.summary.columns });
    return this.endPrepare(st);
  }

  private nextPreparePart(st: Extract<State, { s: 'prepare' }>): TrackResult {
    if (st.left > 0) {
      this.state = st;
      return 'more';
    }
    if (st.part === 'params') return this.nextPreparePart({ ...st, part: 'columns', left: st.summary.columns });
    return this.endPrepare(st);
  }

  private endPrepare(st: Extract<State, { s: 'prepare' }>): TrackResult {
    this.addResult(st.summary);
    return this.finish();
  }

  private afterColumns(columns: number): State {
    return { s: 'rows', columns, rows: 0 };
  }

  /** EOF (classic) or the 0xFE OK that ends rows under CLIENT_DEPRECATE_EOF. */
  private isTerminator(first: number, payloadLength: number): boolean {
    if (first !== EOF_HEADER) return false;
    return this.deprecateEof ? payloadLength < MAX_PACKET_PAYLOAD : isEofPacket(first, payloadLength);
  }

  private terminatorFlags(payload: Buffer, payloadLength: number): { statusFlags: number; warnings: number } {
    if (isEof(payload, payloadLength)) return decodeEof(payload, this.capabilities);
    const ok = decodeOk(payload, this.capabilities);
    return { statusFlags: ok.statusFlags, warnings: ok.warnings };
  }

  private okResult(payload: Buffer): TrackResult {
    const ok = decodeOk(payload, this.capabilities);
    const summary: ResultSummary = {
      kind: 'ok',
      affectedRows: ok.affectedRows,
      lastInsertId: ok.lastInsertId,
      statusFlags: ok.statusFlags,
      warnings: ok.warnings,
      info: ok.info,
    };
    return this.endResult(summary);
  }

  /** Records a result; continues with the next one when the server says more follow. */
  private endResult(summary: Extract<ResultSummary, { statusFlags: number }>): TrackResult {
    this.addResult(summary, summary.statusFlags);
    if (summary.statusFlags & SERVER_MORE_RESULTS_EXISTS && this.command !== COM_CHANGE_USER) {
      this.state = { s: 'first' };
      return 'more';
    }
    return this.finish();
  }

  private addResult(summary: ResultSummary, statusFlags?: number): void {
    const o = this.current!;
    o.resultCount++;
    if (o.results.length < MAX_RESULTS_KEPT) o.results.push(summary);
    if (statusFlags !== undefined) o.statusFlags = statusFlags;
  }

  private finishError(payload: Buffer): TrackResult {
    const err = decodeErr(payload);
    this.addResult({ kind: 'error', ...err });
    this.current!.error = err;
    return this.finish();
  }

  private finish(): TrackResult {
    this.state = { s: 'idle' };
    return 'done';
  }

  private unexpected(first: number, expected: string): ResponseError {
    return new ResponseError(
      'unexpected_packet',
      `in the response to ${commandName(this.command)}: got a packet starting with ${hex(first)} where ${expected} was expected`,
    );
  }
}

/** The captured prefix data[start, end) as a Buffer: made only for packets that are decoded. */
function viewOf(data: Buffer, start: number, end: number): Buffer {
  return start === 0 && end === data.length ? data : data.subarray(start, end);
}

/** packets.isEof() for a packet known by its first byte (-1 when empty) and announced length. */
function isEofPacket(first: number, payloadLength: number): boolean {
  return first === EOF_HEADER && payloadLength < EOF_MAX_LENGTH;
}

function hex(b: number): string {
  return b < 0 ? '(empty)' : `0x${b.toString(16).padStart(2, '0')}`;
}

