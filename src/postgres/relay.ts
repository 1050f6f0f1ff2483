import type net from 'node:net';
import type { AuditLog, QueryLog } from '../audit/auditLog';
import type { IdentityFields } from '../audit/events';
import type { PgServerConnection } from './serverConnection';
import type { Notice, Relay, RelayEnd, SessionState } from '../core/relay';
import { decodeCommandComplete, decodeErrorFields, decodeReadyForQueryStatus, errorResponse } from '../../protocols/postgres/backend';
import { BackendType, FrontendType, SqlState } from '../../protocols/postgres/constants';
import { captureTable, PgFramer, type CaptureTable } from '../../protocols/postgres/framing';
import { decodeParse, decodeQuery } from '../../protocols/postgres/frontend';
import type { FrameHandler } from '../../protocols/postgres/framing';
import { PgQueryTracker, type CompletedQuery } from './queryTracker';
import { endWith } from '../net/endWith';
import type { QueryStats } from '../metrics/queryStats';

export interface PgRelayOptions {
  client: net.Socket;
  server: PgServerConnection;
  audit: AuditLog;
  sessionId: string;
  identity: IdentityFields;
  /** Written to the client before any relayed byte (AuthenticationOk ... ReadyForQuery). */
  greeting: Buffer;
  /** Counts and times completed statements for the metrics: plain fields, resolved once per session (src/metrics/queryStats.ts says why). */
  queryStats?: QueryStats;
  onEnd: (end: RelayEnd) => void;
}

const { Query, Parse, Bind, Close, Sync, FunctionCall, Terminate } = FrontendType;
const { ReadyForQuery, CommandComplete, ErrorResponse } = BackendType;
/** The first byte of a Close body that names a prepared statement (not a portal). */
const CLOSE_STATEMENT = 0x53; // 'S'
/** PostgreSQL's own limit on a message from either side. */
const MAX_MESSAGE = 0x3fffffff;
/** Enough of a Bind/Close body to read the statement name. */
const NAME_PREFIX = 256;
/** Upstream errors are recorded in the audit; longer ones (huge DETAIL/CONTEXT) are noted, not stored. */
const MAX_ERROR_CAPTURE = 64 * 1024;
/** Enough of an ErrorResponse for its severity fields (S and V come first). */
const SEVERITY_CAPTURE = 64;
/** PostgreSQL command tags are under 64 bytes. */
const TAG_CAPTURE = 128;
/** Terminate is exactly 'X' + int32 4. */
const TERMINATE_LENGTH = 5;

/**
 * Relays one session's bytes both ways. Chunks are forwarded as received; the framers only
 * read message headers (and small prefixes of Query, Parse, CommandComplete, ErrorResponse
 * and ReadyForQuery) to follow query boundaries for the audit log and to know whether the
 * upstream connection is idle and clean when the session ends. Prefixes that only feed query
 * audit records (SQL text, statement names, tags, errors) are not captured when audit.queries
 * is off. Frames are visited in place (PgFramer.scan): nothing is allocated per message.
 */
export class PgRelay implements Relay<string> {
  private readonly tracker: PgQueryTracker;
  private readonly clientFramer: PgFramer;
  private readonly serverFramer: PgFramer;
  private readonly server: net.Socket;
  bytesFromClient = 0;
  bytesToClient = 0;
  queries = 0;
  private ended = false;
  /** Set by hold(): called whenever the session comes to rest. */
  private onRest: (() => void) | undefined;
  /** audit.queries: capture and decode what query records need. */
  private readonly wantSql: boolean;
  /** State of the client chunk being scanned (set by onClientFrame, read by onClientData). */
  private terminateSeen = false;
  private afterTerminate = false;
  /** Part of a message reached the upstream that the client never completed there: do not reuse it. */
  private upstreamDirty = false;
  /** The upstream sent a FATAL (or PANIC) ErrorResponse: it is closing and has told the client why. */
  private upstreamFatal = false;
  private queryLog?: QueryLog;

  constructor(private readonly o: PgRelayOptions) {
    this.wantSql = o.audit.config.queries;
    // Durations only feed query records and metrics: without them, no clock read per statement.
    this.tracker = new PgQueryTracker(this.wantSql || o.queryStats ? Date.now : noClock);
    const captures = capturesFor(this.wantSql, o.audit.config.maxQueryBytes);
    this.clientFramer = new PgFramer({ maxBodyLength: MAX_MESSAGE, capture: captures.client });
    this.serverFramer = new PgFramer({ maxBodyLength: MAX_MESSAGE, capture: captures.server });
    this.server = o.server.socket;
  }

  start(): void {
    const { client } = this.o;
    const leftover = this.o.server.detach();
    client.write(this.o.greeting);
    client.on('data', this.onClientData);
    client.on('end', () => this.stop('client_closed'));
    this.server.on('data', this.onServerData);
    this.server.on('error', this.onServerGone);
    this.server.on('close', this.onServerGone);
    if (leftover.length > 0) this.onServerData(leftover);
  }

  get state(): SessionState {
    if (this.tracker.outstanding > 0) return 'active';
    return this.tracker.txStatus === 'I' ? 'idle' : 'transaction';
  }

  get busySince(): number | undefined {
    return this.tracker.busySince;
  }

  /** End the relay. With `notice`, the client gets a FATAL ErrorResponse first. */
  stop(reason: string, notice?: Notice<string>): void {
    if (this.ended) return;
    this.ended = true;
    this.onRest = undefined;
    const { client } = this.o;
    client.removeListener('data', this.onClientData);
    this.server.removeListener('data', this.onServerData);
    this.server.removeListener('error', this.onServerGone);
    this.server.removeListener('close', this.onServerGone);
    this.server.resume();
    const reusable = !this.o.server.broken && this.tracker.idle && this.clientFramer.atBoundary && this.serverFramer.atBoundary
      && !this.upstreamDirty && !reason.startsWith('upstream');
    if (reusable) this.o.server.attach(this.tracker.txStatus);
    if (notice && !client.destroyed) endWith(client, errorResponse({ severity: 'FATAL', ...notice }));
    else if (reason === 'upstream_closed') endWith(client); // after the upstream's own FATAL: let it reach the client
    else client.destroy();
    this.o.onEnd({ reason, upstreamReusable: reusable, bytesFromClient: this.bytesFromClient, bytesToClient: this.bytesToClient, queries: this.queries });
  }

  private readonly onClientData = (chunk: Buffer): void => {
    this.bytesFromClient += chunk.length;
    this.terminateSeen = false;
    this.afterTerminate = false;
    try {
      this.clientFramer.scan(chunk, this.onClientFrame);
    } catch (err) {
      this.stop('protocol_violation', { code: SqlState.PROTOCOL_VIOLATION, message: `invalid message from the client: ${(err as Error).message}` });
      return;
    }
    if (this.terminateSeen) {
      this.onTerminate(chunk);
      return;
    }
    if (!this.server.write(chunk)) {
      this.o.client.pause();
      this.server.once('drain', () => this.o.client.resume());
    }
  };

  private readonly onClientFrame: FrameHandler = (type, _bodyLength, data, start, end) => {
    if (this.terminateSeen) {
      this.afterTerminate = true;
      return;
    }
    switch (type) {
      case Query: this.tracker.query(this.wantSql ? decodeQuery(data.subarray(start, end)) : ''); break;
      case Parse:
        if (this.wantSql) {
          const parsed = decodeParse(data.subarray(start, end));
          this.tracker.parse(parsed.statement, parsed.query);
        } else {
          this.tracker.parse('', '');
        }
        break;
      // Bind and Close are captured only for query records (wantSql).
      case Bind: {
        const body = data.subarray(start, end);
        this.tracker.bind(readCString(body, readCStringEnd(body, 0) + 1));
        break;
      }
      case Close: if (data[start] === CLOSE_STATEMENT && end > start) this.tracker.closeStatement(readCString(data.subarray(start, end), 1)); break;
      case Sync: this.tracker.sync(); break;
      case FunctionCall: this.tracker.functionCall(); break;
      case Terminate: this.terminateSeen = true; break;
    }
  };

  /**
   * Terminate ends the client's session, not the pooled upstream one: never forward it. It must
   * be the last thing the client sent. If its 5 bytes were split over chunks, its first bytes
   * already went upstream with the previous chunk, so that connection is not reused.
   */
  private onTerminate(chunk: Buffer): void {
    const whole = chunk.length >= TERMINATE_LENGTH;
    // Messages the framer skips are not visited, so also check that the chunk really ends with Terminate.
    if (this.afterTerminate || !this.clientFramer.atBoundary || (whole && !endsWithTerminate(chunk))) {
      this.stop('protocol_violation', { code: SqlState.PROTOCOL_VIOLATION, message: 'data after Terminate' });
      return;
    }
    if (whole) {
      const forward = chunk.subarray(0, chunk.length - TERMINATE_LENGTH);
      if (forward.length > 0) this.server.write(forward);
    } else {
      this.upstreamDirty = true;
    }
    this.stop('client_terminated');
  }

  private readonly onServerData = (chunk: Buffer): void => {
    try {
      this.serverFramer.scan(chunk, this.onServerFrame);
    } catch (err) {
      this.stop('upstream_protocol_error', { code: SqlState.PROTOCOL_VIOLATION, message: 'tokengate received an invalid message from the upstream server; reconnect' });
      return;
    }
    this.bytesToClient += chunk.length;
    const { client } = this.o;
    if (!client.write(chunk)) {
      this.server.pause();
      client.once('drain', () => this.server.resume());
    }
    if (this.onRest !== undefined && this.atRest()) this.onRest();
  };

  private readonly onServerFrame: FrameHandler = (type, bodyLength, data, start, end) => {
    switch (type) {
      case ReadyForQuery: {
        const done = this.tracker.readyForQuery(decodeReadyForQueryStatus(bodyLength, data[start]));
        if (done) this.auditQuery(done);
        break;
      }
      // CommandComplete and ErrorResponse are captured only for query records (wantSql).
      case CommandComplete: this.onCommandComplete(data.subarray(start, end), bodyLength); break;
      case ErrorResponse:
        if (isFatal(data.subarray(start, end))) this.upstreamFatal = true;
        if (this.wantSql) this.onServerError(data.subarray(start, end), bodyLength);
        break;
    }
  };

  /** Record a CommandComplete tag for the audit (only captured when queries are audited). */
  private onCommandComplete(body: Buffer, bodyLength: number): void {
    if (body.length < bodyLength) return; // not a real tag: nothing worth recording
    try {
      this.tracker.commandComplete(decodeCommandComplete(body));
    } catch {
      /* an unreadable tag only loses the tag in the audit record */
    }
  }

  /** Record an upstream ErrorResponse for the audit; an error body past the capture limit keeps its SQLSTATE only if it was read. */
  private onServerError(body: Buffer, bodyLength: number): void {
    if (body.length < bodyLength) {
      this.tracker.error('XX000', '(error message too long to record)');
      return;
    }
    try {
      const fields = decodeErrorFields(body);
      this.tracker.error(fields.code, fields.message);
    } catch {
      this.tracker.error('XX000', '(unreadable error message)');
    }
  }

  private readonly onServerGone = (): void => {
    // PostgreSQL sends one FATAL and closes (57P01 from pg_terminate_backend, ...): when the upstream
    // sent its own, that is the client's only error, as drivers expect; ours only when it said nothing.
    if (this.upstreamFatal) {
      this.stop('upstream_closed');
      return;
    }
    this.stop('upstream_closed', { code: SqlState.CONNECTION_FAILURE, message: 'the upstream database closed the connection; reconnect to get a new session' });
  };

  private auditQuery(q: CompletedQuery): void {
    this.queries++;
    this.o.queryStats?.observe(q.durationMs);
    if (!this.o.audit.config.queries) return;
    const clipped = this.o.audit.clip(q.sql);
    // The session's fields are serialized once, in its query log, not with every statement.
    this.queryLog ??= this.o.audit.queryLog({ sessionId: this.o.sessionId, protocol: 'postgres', identity: this.o.identity });
    this.queryLog.write({
      sql: clipped.sql, truncated: clipped.truncated, durationMs: q.durationMs,
      tag: q.tags.length === 1 ? q.tags[0] : q.tags.length ? q.tags.join(', ') : undefined, sqlState: q.sqlState, error: q.error,
    });
  }

  // ---- ending at a boundary ----------------------------------------------------

  atRest(): boolean {
    return this.tracker.idle && this.serverFramer.atBoundary && this.clientFramer.atBoundary;
  }

  hold(onRest: () => void): void {
    if (this.ended) return;
    this.onRest = onRest;
    this.o.client.pause(); // no new statements
  }

  interrupt(): void {
    if (!this.ended && !this.tracker.idle) this.o.server.cancel().catch(() => undefined);
  }
}


const noClock = (): number => 0;

interface RelayCaptures {
  client: CaptureTable;
  server: CaptureTable;
}

/** Capture tables per audit setting: built once, shared by every session's framers. */
const capturesCache = new Map<string, RelayCaptures>();

/**
 * What each side's framer keeps of a message. Without query records Parse only has to be seen (it
 * opens a batch) and Bind/Close, tags and errors not at all; ReadyForQuery's status byte always.
 */
function capturesFor(wantSql: boolean, maxQueryBytes: number): RelayCaptures {
  const key = `${wantSql}:${maxQueryBytes}`;
  let captures = capturesCache.get(key);
  if (captures === undefined) {
    const sqlCapture = maxQueryBytes + 1;
    captures = {
      client: captureTable((type) => {
        switch (type) {
          case Query: return wantSql ? sqlCapture : 0;
          case Parse: return wantSql ? sqlCapture + NAME_PREFIX : 0;
          case Bind: case Close: return wantSql ? NAME_PREFIX : -1;
          case Sync: case FunctionCall: case Terminate: return 0;
          default: return -1;
        }
      }),
      server: captureTable((type) => {
        switch (type) {
          case ReadyForQuery: return 1;
          case CommandComplete: return wantSql ? TAG_CAPTURE : -1;
          case ErrorResponse: return wantSql ? MAX_ERROR_CAPTURE : SEVERITY_CAPTURE;
          default: return -1;
        }
      }),
    };
    capturesCache.set(key, captures);
  }
  return captures;
}

/**
 * FATAL or PANIC, from an ErrorResponse body (or its first bytes): the non-localized severity (V)
 * when present, else S. PostgreSQL sends both first, so SEVERITY_CAPTURE bytes hold them.
 */
function isFatal(body: Buffer): boolean {
  let severity: string | undefined;
  for (let pos = 0; pos < body.length && body[pos] !== 0;) {
    const type = body[pos];
    const end = body.indexOf(0, pos + 1);
    if (end < 0) break;
    if (type === 0x56 /* V */) return isFatalSeverity(body.toString('latin1', pos + 1, end));
    if (type === 0x53 /* S */) severity = body.toString('latin1', pos + 1, end);
    pos = end + 1;
  }
  return severity !== undefined && isFatalSeverity(severity);
}

const isFatalSeverity = (s: string): boolean => s === 'FATAL' || s === 'PANIC';

function endsWithTerminate(chunk: Buffer): boolean {
  const at = chunk.length - TERMINATE_LENGTH;
  return chunk[at] === Terminate && chunk.readUInt32BE(at + 1) === 4;
}

function readCStringEnd(buf: Buffer, start: number): number {
  const end = buf.indexOf(0, start);
  return end < 0 ? buf.length : end;
}

function readCString(buf: Buffer, start: number): string {
  return buf.toString('utf8', start, readCStringEnd(buf, start));
}
