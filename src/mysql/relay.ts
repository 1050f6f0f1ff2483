import type net from 'node:net';
import type { AuditLog, QueryLog } from '../audit/auditLog';
import type { IdentityFields } from '../audit/events';
import type { Notice, Relay, RelayEnd, SessionState } from '../core/relay';
import type { MysqlCommandResult, MysqlServerConnection } from './serverConnection';
import { decodeCommand, type Command } from '../../protocols/mysql/command';
import { COM_INIT_DB, COM_PROCESS_KILL, COM_QUERY, COM_SET_OPTION, COM_STMT_CLOSE, COM_STMT_EXECUTE, COM_STMT_PREPARE, ERR_HEADER, ErrorCode, MAX_PACKET_PAYLOAD, SERVER_STATUS_IN_TRANS, type ErrorCodeDef } from '../../protocols/mysql/constants';
import { PacketFramer, encodePacket, type PacketHandler } from '../../protocols/mysql/framing';
import { decodeErr } from '../../protocols/mysql/packets';
import { ResponseTracker, captureForResponse, type ResponseOutcome, type ResultSummary } from '../../protocols/mysql/response';
import { MysqlCommandSplitter, type ClientItem } from './commandSplitter';
import { LAST_PREPARED_STATEMENT, MysqlPreparedStatements } from './preparedStatements';
import { GATEWAY_ERROR, errPayload } from './replies';
import { endWith } from '../net/endWith';
import { PacketError } from '../../protocols/mysql/errors';
import { log } from '../log';
import { coarseNow } from '../core/coarseClock';
import type { QueryStats } from '../metrics/queryStats';

/** A client command as the policy sees it. */
export interface MysqlCommand {
  /** Decoded from the captured head; text fields are cut when `command.truncated`. */
  command: Command;
  sequenceId: number;
  payloadLength: number;
  /** False for a command longer than the hold limit, already being streamed in pieces. */
  complete: boolean;
}

/** What to do with a client command. Deciding must have no side effects: effects go in `async`. */
export type Interception =
  | { kind: 'forward' }
  /** Answer it (OK or ERR payload); with `end`, close the session after the answer. */
  | { kind: 'reply'; payload: Buffer; end?: string }
  /** Run `run` once every earlier response is complete, then do what it resolves to. */
  | { kind: 'async'; run: () => Promise<Interception> }
  /** A command that gets no response (COM_STMT_CLOSE with no upstream yet): drop it. */
  | { kind: 'silent' }
  | { kind: 'quit' };

export interface MysqlRelayOptions {
  client: net.Socket;
  audit: AuditLog;
  sessionId: string;
  identity: IdentityFields;
  /** Capabilities negotiated with the client (for the gateway's own packets). */
  clientCapabilities: number;
  /** Status flags for the gateway's own OK packets until an upstream reports some. */
  statusFlags: number;
  intercept(cmd: MysqlCommand): Interception;
  /** Counts and times completed query commands for the metrics: plain fields, resolved once per session (src/metrics/queryStats.ts says why). */
  queryStats?: QueryStats;
  onEnd(end: RelayEnd): void;
}

interface InFlight {
  command: number;
  cursor: boolean;
  startedAt: number;
  /** SQL for the audit record (COM_QUERY, COM_STMT_PREPARE/EXECUTE), already clipped. */
  sql?: string;
  truncated?: boolean;
  /** COM_STMT_EXECUTE of "the statement just prepared": its SQL is known once the PREPARE before it completes. */
  lastPrepared?: boolean;
}

/** Bytes of one command held before it is streamed on (and the most of a query the policy can read). */
const MIN_HOLD = 64 * 1024;
const MAX_HOLD = 1024 * 1024;
/** Client bytes waiting behind an unanswered command before the client socket is paused. */
const MAX_QUEUED_BYTES = 4 * 1024 * 1024;
/** Bounds the gateway's own upstream commands (COM_INIT_DB for USE). */
const INTERNAL_TIMEOUT_MS = 10_000;
const MAX_TAGS = 10;

/**
 * Relays one MySQL session's packets both ways. Server chunks are forwarded as received;
 * the framer and ResponseTracker read packet prefixes only, to know when each response ends
 * (audit, idle upstream). Client commands are forwarded as received too, except the ones the
 * policy answers itself (USE, KILL, COM_QUIT, ...): those wait until every earlier response
 * is complete, so the client sees answers in order. The session may start without an
 * upstream (no database chosen yet) and get one later through setUpstream().
 * With audit.queries off, nothing is captured for query records (SQL clips, statement
 * texts, tags, timings): only what the policy and the response boundaries need. Packets
 * are visited in place (PacketFramer.scan), with no array or view per packet.
 */
export class MysqlRelay implements Relay<ErrorCodeDef> {
  private readonly splitter: MysqlCommandSplitter;
  private readonly items: ClientItem[] = [];
  private queuedBytes = 0;
  /** items[0] decoded, and the policy's decision for it, made once. */
  private head: { cmd: MysqlCommand; decision: Interception } | undefined;
  private readonly inFlight: InFlight[] = [];
  private readonly prepared = new MysqlPreparedStatements();
  private conn: MysqlServerConnection | undefined;
  private server: net.Socket | undefined;
  private framer: PacketFramer | undefined;
  private tracker: ResponseTracker | undefined;
  /** A long command is partly forwarded; its tails must follow before anything else. */
  private streaming = false;
  /** An async interception is running. */
  private working = false;
  private pumping = false;
  private serverBlocked = false;
  private clientPaused = false;
  /** The client changed a session option (COM_SET_OPTION) that a reset would not undo. */
  private optionChanged = false;
  /** Sequence id the client expects next in the response being relayed. */
  private nextClientSeq = 0;
  bytesFromClient = 0;
  bytesToClient = 0;
  queries = 0;
  /** When the oldest forwarded command still unanswered was sent (ms since the epoch). */
  busySince: number | undefined;
  /** audit.queries: capture what query records need. */
  private readonly wantSql: boolean;
  /** The server chunk being scanned carries an unsolicited ERR (set by onServerPacket). */
  private unsolicited = false;
  /** The chunk onServerData is scanning, so a packet lying whole in it can be cut out. */
  private scanning: Buffer | undefined;
  /**
   * While the session ends at a boundary (hold), the ERR the server gave the statement the gateway
   * interrupted ("1317 Query execution was interrupted"): the client gets the session's own notice
   * (1927, "your access token expired ...") in its place, with its sequence id, so it is told why.
   */
  private interruptedErr: { sequenceId: number; from: number } | undefined;
  private ended = false;
  /** Set by hold(): called whenever the session comes to rest. */
  private onRest: (() => void) | undefined;
  private queryLog?: QueryLog;
  /** Status flags of the last OK/EOF relayed (transaction state). */
  statusFlags: number;

  constructor(private readonly o: MysqlRelayOptions) {
    this.statusFlags = o.statusFlags;
    this.wantSql = o.audit.config.queries;
    this.splitter = new MysqlCommandSplitter(Math.min(MAX_HOLD, Math.max(MIN_HOLD, o.audit.config.maxQueryBytes + 2)));
  }

  get upstream(): MysqlServerConnection | undefined {
    return this.conn;
  }

  /** A response is outstanding upstream (something KILL QUERY could interrupt). */
  get busy(): boolean {
    return this.inFlight.length > 0 || this.streaming;
  }

  get isEnded(): boolean {
    return this.ended;
  }

  start(): void {
    const { client } = this.o;
    client.on('data', this.onClientData);
    client.on('end', this.onClientEnd);
  }

  get state(): SessionState {
    if (this.busy || this.working) return 'active';
    return this.statusFlags & SERVER_STATUS_IN_TRANS ? 'transaction' : 'idle';
  }

  /** Give the relay its upstream connection (at start, or at the first USE of a session without database). */
  setUpstream(conn: MysqlServerConnection): void {
    if (this.conn) throw new Error('the relay already has an upstream connection');
    this.conn = conn;
    this.server = conn.socket;
    this.framer = new PacketFramer({ maxPayloadLength: MAX_PACKET_PAYLOAD, capture: captureForResponse });
    this.tracker = new ResponseTracker(conn.capabilities);
    this.statusFlags = conn.statusFlags;
    const leftover = conn.detach();
    this.server.on('data', this.onServerData);
    this.server.on('error', this.onServerGone);
    this.server.on('close', this.onServerGone);
    if (leftover.length > 0) this.onServerData(leftover);
  }

  /**
   * Runs one command of the gateway's own on the upstream (COM_INIT_DB for USE). Only called
   * from an async interception, i.e. when no response is outstanding.
   */
  async runInternal(payload: Buffer): Promise<MysqlCommandResult> {
    const conn = this.conn;
    const server = this.server;
    if (!conn || !server || this.inFlight.length > 0 || this.streaming) throw new Error('runInternal() needs an idle upstream');
    server.removeListener('data', this.onServerData);
    conn.attach(undefined, this.statusFlags);
    try {
      const result = await conn.command(payload, INTERNAL_TIMEOUT_MS);
      this.statusFlags = conn.statusFlags;
      return result;
    } finally {
      if (!this.ended && !conn.broken) {
        const leftover = conn.detach();
        server.on('data', this.onServerData);
        if (leftover.length > 0) this.onServerData(leftover);
      }
    }
  }

  /**
   * End the relay. With `notice`, the client gets that ERR packet first; `graceful` closes
   * after what was already written (a final answer) instead of dropping the connection.
   */
  stop(reason: string, notice?: Notice<ErrorCodeDef>, graceful = false): void {
    if (this.ended) return;
    this.ended = true;
    this.onRest = undefined;
    const { client } = this.o;
    client.removeListener('data', this.onClientData);
    client.removeListener('end', this.onClientEnd);
    const conn = this.conn;
    let reusable = false;
    if (conn && this.server) {
      this.server.removeListener('data', this.onServerData);
      this.server.removeListener('error', this.onServerGone);
      this.server.removeListener('close', this.onServerGone);
      reusable = !conn.broken && this.inFlight.length === 0 && !this.streaming && !this.working && !this.optionChanged
        && (this.framer?.atBoundary ?? true) && !reason.startsWith('upstream');
      if (reusable) conn.attach(undefined, this.statusFlags);
    }
    if (notice && !client.destroyed) {
      endWith(client, encodePacket(this.noticeSequence(), errPayload(notice.code, notice.message)));
    } else if (reason === 'client_quit' && client.writableLength === 0) {
      // COM_QUIT comes after every answer was written: like the server, just close.
      client.destroy();
    } else if (graceful || reason === 'client_quit') {
      endWith(client);
    } else {
      client.destroy();
    }
    this.o.onEnd({ reason, upstreamReusable: reusable, bytesFromClient: this.bytesFromClient, bytesToClient: this.bytesToClient, queries: this.queries });
  }

  // ---- client -> server ----------------------------------------------------------

  private readonly onClientEnd = (): void => this.stop('client_closed');

  private readonly onClientData = (chunk: Buffer): void => {
    this.bytesFromClient += chunk.length;
    const queued = this.items.length;
    try {
      this.splitter.scan(chunk, this.onClientItem);
    } catch (err) {
      // Any error ends this session only: a data handler that throws would take the whole gateway down.
      logUnexpected(err, this.o.sessionId);
      this.items.length = queued; // nothing of a chunk that broke the framing is queued
      this.stop('protocol_violation', { code: ErrorCode.UNKNOWN_COMMAND, message: `invalid packet from the client: ${(err as Error).message}` });
      return;
    }
    this.pump();
  };

  private readonly onClientItem = (item: ClientItem): void => {
    this.items.push(item);
    this.queuedBytes += item.kind === 'tail' ? item.raw.length : item.rawLength;
  };

  /** Moves queued client items on: forwards what can go, answers what the policy answers. */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (!this.ended && !this.working && this.items.length > 0) {
        const item = this.items[0];
        if (item.kind === 'tail') {
          this.shiftItem(item.raw.length);
          this.writeServer([item.raw]);
          if (item.complete) this.streaming = false;
          continue;
        }
        if (this.onRest !== undefined) break; // the session is ending: no new statements
        if (item.sequenceId !== 0) {
          this.stop('protocol_violation', { code: ErrorCode.UNKNOWN_COMMAND, message: `a command must start with packet sequence id 0, got ${item.sequenceId}` });
          return;
        }
        if (!this.head) {
          const described = this.describe(item);
          if (!described) return; // stopped
          this.head = { cmd: described, decision: this.o.intercept(described) };
        }
        const { cmd, decision } = this.head;
        if (decision.kind === 'forward') {
          this.shiftItem(item.rawLength);
          this.forward(item, cmd);
          continue;
        }
        // The gateway answers this one: after every earlier response, in order.
        if (this.inFlight.length > 0 || this.streaming) break;
        if (!item.complete) {
          this.stop('protocol_violation', { code: ErrorCode.UNKNOWN_COMMAND, message: `${cmd.command.name} of ${cmd.payloadLength} bytes is too long` });
          return;
        }
        this.shiftItem(item.rawLength);
        this.act(decision, cmd, Date.now());
      }
    } finally {
      this.pumping = false;
    }
    this.updateClientFlow();
    if (this.onRest !== undefined && this.atRest()) this.onRest();
  }

  private shiftItem(bytes: number): void {
    this.items.shift();
    this.head = undefined;
    this.queuedBytes -= bytes;
  }

  private describe(item: Extract<ClientItem, { kind: 'command' }>): MysqlCommand | undefined {
    if (item.payloadLength === 0) {
      this.stop('protocol_violation', { code: ErrorCode.UNKNOWN_COMMAND, message: 'an empty packet carries no command' });
      return undefined;
    }
    try {
      return { command: decodeCommand(item.head, item.payloadLength), sequenceId: item.sequenceId, payloadLength: item.payloadLength, complete: item.complete };
    } catch (err) {
      this.stop('protocol_violation', { code: ErrorCode.UNKNOWN_COMMAND, message: `malformed command from the client: ${(err as Error).message}` });
      return undefined;
    }
  }

  private forward(item: Extract<ClientItem, { kind: 'command' }>, cmd: MysqlCommand): void {
    const c = cmd.command;
    const query = isQueryCommand(c.command);
    const audited = this.wantSql && query;
    const entry: InFlight = {
      command: c.command,
      cursor: c.command === COM_STMT_EXECUTE && ResponseTracker.isCursorFlags(c.cursorFlags),
      startedAt: audited || (query && this.o.queryStats) ? Date.now() : 0,
    };
    if (audited) {
      if (c.command === COM_STMT_EXECUTE && c.statementId === LAST_PREPARED_STATEMENT) {
        entry.lastPrepared = true;
      } else {
        const clipped = this.o.audit.clip(this.auditSql(c));
        entry.sql = clipped.sql;
        entry.truncated = clipped.truncated || c.truncated;
      }
    }
    if (c.command === COM_STMT_CLOSE && c.statementId !== undefined) this.prepared.closed(c.statementId);
    if (c.command === COM_SET_OPTION) this.optionChanged = true;
    this.writeServer(item.raw);
    if (!item.complete) this.streaming = true;
    this.inFlight.push(entry);
    if (this.inFlight.length === 1) {
      // A closing ERR before the first response packet answers this command.
      this.nextClientSeq = (item.sequenceId + 1) & 0xff;
      this.busySince = entry.startedAt || coarseNow();
      this.beginHead();
    }
  }

  /** Carries out the policy's decision for a command the gateway answers itself. */
  private act(decision: Interception, cmd: MysqlCommand, startedAt: number): void {
    switch (decision.kind) {
      case 'forward':
        // Only reachable from an async decision: the command's bytes are gone, so this is a policy bug.
        this.reply(cmd, startedAt, errPayload(ErrorCode.UNKNOWN_COMMAND, `tokengate cannot relay ${cmd.command.name} here`));
        return;
      case 'silent':
        return;
      case 'quit':
        this.stop('client_quit');
        return;
      case 'reply':
        this.reply(cmd, startedAt, decision.payload);
        if (decision.end) this.stop(decision.end, undefined, true);
        return;
      case 'async':
        this.working = true;
        decision.run().then(
          (next) => {
            this.working = false;
            if (this.ended) return;
            this.act(next, cmd, startedAt);
            this.pump();
          },
          (err: Error) => {
            this.working = false;
            if (this.ended) return;
            if (this.conn?.broken) {
              this.stop('upstream_closed', { code: ErrorCode.CONNECTION_KILLED, message: 'the upstream database closed the connection; reconnect to get a new session' });
              return;
            }
            this.reply(cmd, startedAt, errPayload(GATEWAY_ERROR, `tokengate could not complete ${cmd.command.name}: ${err.message}`));
            this.pump();
          },
        );
        return;
    }
  }

  private reply(cmd: MysqlCommand, startedAt: number, payload: Buffer): void {
    const seq = (cmd.sequenceId + 1) & 0xff;
    const bytes = encodePacket(seq, payload);
    this.bytesToClient += bytes.length;
    this.o.client.write(bytes);
    if (!this.countQuery(cmd.command.command, startedAt)) return;
    const clipped = this.o.audit.clip(this.auditSql(cmd.command));
    const err = payload[0] === ERR_HEADER ? decodeErr(payload) : undefined;
    this.writeQueryAudit(clipped.sql, clipped.truncated || cmd.command.truncated, startedAt, err ? undefined : 'OK (tokengate)', err);
  }

  /** The SQL an audit record names for a command of isQueryCommand(). */
  private auditSql(c: Command): string {
    switch (c.command) {
      case COM_QUERY:
      case COM_STMT_PREPARE:
        return c.query ?? '';
      case COM_STMT_EXECUTE:
        return this.prepared.sqlOf(c.statementId ?? 0);
      case COM_INIT_DB:
        return `COM_INIT_DB ${c.schema ?? ''}`;
      case COM_PROCESS_KILL:
        return `COM_PROCESS_KILL ${c.processId ?? ''}`;
      default:
        return c.name; // not a query command: no record is made
    }
  }

  /** Counts a query command for RelayEnd.queries and the metrics; true when its audit record is to be written. */
  private countQuery(command: number, startedAt: number): boolean {
    if (!isQueryCommand(command)) return false;
    this.queries++;
    this.o.queryStats?.observe(Date.now() - startedAt);
    return this.wantSql;
  }

  private writeServer(raw: Buffer[]): void {
    const server = this.server;
    if (!server) return;
    if (raw.length > 1) server.cork();
    let ok = true;
    for (const b of raw) ok = server.write(b) && ok;
    if (raw.length > 1) server.uncork();
    if (!ok && !this.serverBlocked) {
      this.serverBlocked = true;
      server.once('drain', () => {
        this.serverBlocked = false;
        this.updateClientFlow();
      });
    }
    this.updateClientFlow();
  }

  private updateClientFlow(): void {
    if (this.ended) return;
    const pause = this.serverBlocked || this.queuedBytes > MAX_QUEUED_BYTES;
    if (pause && !this.clientPaused) this.o.client.pause();
    else if (!pause && this.clientPaused) this.o.client.resume();
    this.clientPaused = pause;
  }

  // ---- server -> client ----------------------------------------------------------

  /** Starts following the oldest forwarded command's response; commands without one complete at once. */
  private beginHead(): void {
    const tracker = this.tracker!;
    while (this.inFlight.length > 0) {
      const head = this.inFlight[0];
      let r;
      try {
        r = tracker.begin(head.command, { cursor: head.cursor });
      } catch (err) {
        this.stop('protocol_violation', { code: ErrorCode.UNKNOWN_COMMAND, message: (err as Error).message });
        return;
      }
      if (r === 'more') return;
      this.inFlight.shift();
      this.complete(head, tracker.outcome);
    }
    this.busySince = undefined;
  }

  private readonly onServerData = (chunk: Buffer): void => {
    if (this.ended) return;
    this.unsolicited = false;
    this.scanning = chunk;
    try {
      this.framer!.scan(chunk, this.onServerPacket);
    } catch (err) {
      // As on the client side: whatever the cause, only this session ends.
      logUnexpected(err, this.o.sessionId);
      this.stop('upstream_protocol_error', { code: ErrorCode.NET_READ_ERROR, message: 'tokengate received an invalid packet from the upstream server; reconnect' });
      return;
    }
    this.scanning = undefined;
    if (this.ended) return; // onServerPacket ended the session: the chunk is not relayed
    const cut = this.interruptedErr;
    if (cut && this.onRest !== undefined) {
      // What came before the interrupted statement's ERR, then the session's notice instead of it.
      const before = chunk.subarray(0, cut.from);
      this.bytesToClient += before.length;
      if (before.length > 0) this.o.client.write(before);
      this.onRest();
      return;
    }
    this.bytesToClient += chunk.length;
    const { client } = this.o;
    if (!client.write(chunk) && this.server) {
      const server = this.server;
      server.pause();
      client.once('drain', () => server.resume());
    }
    if (this.unsolicited) {
      this.stop('upstream_closed', undefined, true); // let the server's ERR reach the client
      return;
    }
    if (this.inFlight.length === 0) {
      this.nextClientSeq = 0;
      this.pump();
    }
  };

  /** Follows one server packet of the chunk being scanned (its captured prefix is data[start, end)). */
  private readonly onServerPacket: PacketHandler = (sequenceId, payloadLength, data, start, end, continuation) => {
    if (this.ended || this.unsolicited) return;
    if (this.inFlight.length === 0) {
      if (continuation || end <= start || data[start] !== ERR_HEADER) {
        this.stop('upstream_protocol_error', { code: ErrorCode.NET_READ_ERROR, message: 'the upstream server sent data while no command was running; reconnect' });
        return;
      }
      this.unsolicited = true; // the server is ending the session (KILL, shutdown, timeout): the client sees why
      return;
    }
    this.nextClientSeq = (sequenceId + 1) & 0xff;
    const tracker = this.tracker!;
    let r;
    try {
      r = tracker.onPacketAt(data, start, end, payloadLength);
    } catch (err) {
      this.stop('upstream_protocol_error', { code: ErrorCode.NET_READ_ERROR, message: `tokengate could not follow the upstream's response (${(err as Error).message}); reconnect` });
      return;
    }
    if (r === 'done') {
      const head = this.inFlight.shift()!;
      const error = tracker.outcome?.error;
      if (this.onRest !== undefined && error?.code === ER_QUERY_INTERRUPTED && data === this.scanning && start >= 4 && this.inFlight.length === 0) {
        this.interruptedErr = { sequenceId, from: start - 4 };
      }
      this.complete(head, tracker.outcome);
      if (this.inFlight.length > 0) this.busySince = this.inFlight[0].startedAt || coarseNow();
      this.beginHead();
    }
  };

  private readonly onServerGone = (): void => {
    this.stop('upstream_closed', { code: ErrorCode.CONNECTION_KILLED, message: 'the upstream database closed the connection; reconnect to get a new session' });
  };

  private complete(head: InFlight, outcome: ResponseOutcome | undefined): void {
    if (outcome?.statusFlags !== undefined) this.statusFlags = outcome.statusFlags;
    if (!this.countQuery(head.command, head.startedAt)) return;
    if (head.command === COM_STMT_PREPARE && outcome) {
      const prepared = outcome.results.find((r) => r.kind === 'prepared');
      if (prepared && prepared.kind === 'prepared') this.prepared.prepared(prepared.statementId, head.sql ?? '');
    }
    if (head.lastPrepared) head.sql = this.prepared.sqlOf(LAST_PREPARED_STATEMENT);
    this.writeQueryAudit(head.sql ?? '', head.truncated ?? false, head.startedAt, outcome ? summarize(outcome) : undefined, outcome?.error);
  }

  /** Writes a query record: only called when queries are audited (after countQuery). */
  private writeQueryAudit(sql: string, truncated: boolean, startedAt: number, tag: string | undefined, error?: { code: number; sqlState?: string; message: string }): void {
    // The session's fields are serialized once, in its query log, not with every statement.
    this.queryLog ??= this.o.audit.queryLog({ sessionId: this.o.sessionId, protocol: 'mysql', identity: this.o.identity });
    this.queryLog.write({
      sql, truncated, durationMs: Date.now() - startedAt, tag, sqlState: error?.sqlState, error: error ? `ERROR ${error.code}: ${error.message}` : undefined,
    });
  }

  // ---- ending at a boundary --------------------------------------------------------

  atRest(): boolean {
    return this.inFlight.length === 0 && !this.streaming && !this.working && (this.framer?.atBoundary ?? true);
  }

  hold(onRest: () => void): void {
    if (!this.ended) this.onRest = onRest;
  }

  interrupt(): void {
    if (!this.ended && this.inFlight.length > 0) this.conn?.killQuery().catch(() => undefined);
  }

  /**
   * The sequence id for a closing ERR: the next one of the response being relayed, the answer
   * to a command still waiting in the queue, or 0 (unsolicited) when the client waits for nothing.
   */
  private noticeSequence(): number {
    if (this.interruptedErr) return this.interruptedErr.sequenceId;
    if (this.inFlight.length > 0) return this.nextClientSeq;
    const next = this.items[0];
    if (next && next.kind === 'command') return (next.sequenceId + 1) & 0xff;
    return 0;
  }
}

/** ER_QUERY_INTERRUPTED: the server's answer to a statement stopped by KILL QUERY. */
const ER_QUERY_INTERRUPTED = 1317;

/** Commands that make a query record and count in RelayEnd.queries. */
function isQueryCommand(command: number): boolean {
  return command === COM_QUERY || command === COM_STMT_PREPARE || command === COM_STMT_EXECUTE || command === COM_INIT_DB || command === COM_PROCESS_KILL;
}

/** A short outcome for the audit record: "3 rows", "OK 1", "PREPARED #5", one per result. */
function summarize(outcome: ResponseOutcome): string | undefined {
  const parts: string[] = [];
  for (const r of outcome.results.slice(0, MAX_TAGS)) {
    const s = summarizeOne(r);
    if (s) parts.push(s);
  }
  if (outcome.resultCount > MAX_TAGS) parts.push(`(+${outcome.resultCount - MAX_TAGS} more)`);
  return parts.length ? parts.join(', ') : undefined;
}

function summarizeOne(r: ResultSummary): string | undefined {
  switch (r.kind) {
    case 'ok': return `OK ${r.affectedRows}`;
    case 'rows': return `${r.rows} rows`;
    case 'prepared': return `PREPARED #${r.statementId}`;
    case 'eof': return 'EOF';
    default: return undefined;
  }
}

/** A relay error that is not a framing error is a gateway bug: the session ends either way, but the cause is logged. */
function logUnexpected(err: unknown, sessionId: string): void {
  if (err instanceof PacketError) return;
  log.error(`session ${sessionId}: internal error while relaying MySQL packets (${err instanceof Error ? err.message : String(err)}); the session was ended`);
}
