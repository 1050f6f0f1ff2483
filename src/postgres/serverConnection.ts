import * as net from 'node:net';
import * as tls from 'node:tls';
import { serialize } from 'pg-protocol';
import { decodeCommandComplete, decodeDataRow, decodeErrorFields, decodeParameterStatus, decodeReadyForQuery, type ErrorFields } from '../../protocols/postgres/backend';
import { BackendType, CANCEL_REQUEST_CODE, type TransactionStatus } from '../../protocols/postgres/constants';
import { ProtocolError } from '../../protocols/postgres/errors';
import { describeType } from '../../protocols/postgres/framing';
import { BackendStream } from './backendStream';

export type TxStatus = TransactionStatus;

/** Where and how to open the side connection that carries a CancelRequest. */
export interface CancelTarget {
  host: string;
  port: number;
  /** TLS options used for the session; undefined when the session is plaintext. */
  tls?: tls.ConnectionOptions;
  timeoutMs: number;
}

export interface PgQueryResult {
  /** The first ErrorResponse, if the statement failed. */
  error?: ErrorFields;
  /** Text-format rows of every result set, in order (internal queries only: bounded). */
  rows: Array<Array<string | null>>;
  commandTags: string[];
}

export class PgQueryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PgQueryError';
  }
}

/** Everything connectPgUpstream learned during login. */
export interface PgServerConnectionInit {
  socket: net.Socket;
  /** The login's stream: messages and bytes it received but did not consume come along. */
  stream: BackendStream;
  processId: number;
  secretKey: Buffer;
  parameters: Map<string, string>;
  txStatus: TxStatus;
  cancelTarget: CancelTarget;
}

/** Rows kept by query(): it runs reset and SET statements, not user queries. */
const MAX_QUERY_RESULT_BYTES = 1024 * 1024;
const TERMINATE = Buffer.from([0x58, 0, 0, 0, 4]);

let nextId = 1;

/** Internal queries written together; each ends at its own ReadyForQuery. */
interface PendingQuery {
  resolve(r: PgQueryResult[]): void;
  reject(e: Error): void;
  /** Results of the finished queries, then the one being received. */
  results: PgQueryResult[];
  remaining: number;
  bytes: number;
  timer: NodeJS.Timeout;
}

/**
 * One authenticated upstream PostgreSQL session. While attached it reads the socket itself
 * (internal queries, asynchronous ParameterStatus/notices); the relay detach()es it to take
 * the raw socket over and attach()es it back at a ReadyForQuery boundary.
 */
export class PgServerConnection {
  readonly id = nextId++;
  readonly socket: net.Socket;
  readonly processId: number;
  readonly secretKey: Buffer;
  readonly parameters: Map<string, string>;
  txStatus: TxStatus;
  /** Why the connection became unusable (for logs; never contains a secret). */
  brokenReason: string | undefined;
  /**
   * The login's settings statement (set_config calls) in force on top of a fresh DISCARD ALL,
   * '' for none. The pool puts them back after its DISCARD ALL on release, so the next login of the
   * same agent with the same parameters needs no statement of its own (see PgClientSession).
   */
  sessionSettings = '';

  readonly #stream: BackendStream;
  readonly #cancelTarget: CancelTarget;
  #attached = false;
  #closed = false;
  #pending: PendingQuery | undefined;
  readonly #onData = (chunk: Buffer): void => this.#drain(chunk);

  constructor(init: PgServerConnectionInit) {
    this.socket = init.socket;
    this.processId = init.processId;
    this.secretKey = init.secretKey;
    this.parameters = init.parameters;
    this.txStatus = init.txStatus;
    this.#stream = init.stream;
    this.#cancelTarget = init.cancelTarget;
    // Kept for the connection's whole life, also while detached: an unhandled 'error' would crash the process.
    this.socket.on('error', (err) => this.#markBroken(`socket error: ${err.message}`));
    this.socket.on('close', () => this.#markBroken('socket closed'));
    this.attach(init.txStatus);
  }

  get broken(): boolean {
    return this.brokenReason !== undefined || this.socket.destroyed;
  }

  get attached(): boolean {
    return this.#attached;
  }

  /**
   * Runs one simple-protocol statement outside the relay and resolves at ReadyForQuery.
   * A server error is returned as result.error (the connection stays usable); socket errors,
   * timeouts and unexpected messages reject and mark the connection broken.
   */
  async query(sql: string, timeoutMs: number): Promise<PgQueryResult> {
    const [result] = await this.queries([sql], timeoutMs);
    return result;
  }

  /**
   * Pipelines simple-protocol queries: one write, one result per query (each ends at its own
   * ReadyForQuery). Each Query message is its own implicit transaction, so one failing does
   * not stop the next: batch only statements that are safe to run regardless.
   */
  queries(sqls: string[], timeoutMs: number): Promise<PgQueryResult[]> {
    if (this.broken) return Promise.reject(new PgQueryError(`Upstream connection ${this.id} is broken (${this.brokenReason ?? 'socket destroyed'}).`));
    if (!this.#attached) return Promise.reject(new PgQueryError('query() called while the relay has the connection detached.'));
    if (this.#pending) return Promise.reject(new PgQueryError('query() called while another internal query is running.'));
    if (sqls.length === 0) return Promise.resolve([]);
    return new Promise<PgQueryResult[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#failPending(new PgQueryError(`Upstream did not answer an internal query within ${timeoutMs} ms.`));
        this.#markBroken('internal query timed out');
      }, timeoutMs);
      this.#pending = { resolve, reject, timer, bytes: 0, remaining: sqls.length, results: [{ rows: [], commandTags: [] }] };
      this.socket.write(sqls.length === 1 ? serialize.query(sqls[0]) : Buffer.concat(sqls.map((sql) => serialize.query(sql))));
      // Bytes may already be buffered (e.g. handed back by attach()).
      this.#drain();
    });
  }

  /**
   * Hands the socket to the relay and returns bytes received but not consumed (normally none).
   * The socket stays paused, so nothing is lost, until the relay adds its 'data' listener;
   * that resumes it, as on a fresh stream. (Calling socket.resume() as well is harmless.)
   */
  detach(): Buffer {
    if (this.#pending) throw new PgQueryError('detach() called while an internal query is running.');
    this.socket.pause();
    this.socket.removeListener('data', this.#onData);
    this.#attached = false;
    this.socket.on('newListener', this.#resumeOnDataListener);
    return this.#stream.takeUnread();
  }

  // resume() only schedules the flow, so the listener being added is in place when data arrives.
  readonly #resumeOnDataListener = (event: string | symbol): void => {
    if (event !== 'data') return;
    this.socket.removeListener('newListener', this.#resumeOnDataListener);
    this.socket.resume();
  };

  /**
   * The relay gives the socket back after a ReadyForQuery with the given status. The relay
   * must have removed its own 'data' listener; `leftover` is any bytes it read past that point.
   */
  attach(txStatus: TxStatus, leftover?: Buffer): void {
    if (this.#attached) return;
    this.socket.removeListener('newListener', this.#resumeOnDataListener);
    this.txStatus = txStatus;
    this.#attached = true;
    this.socket.on('data', this.#onData);
    this.socket.resume();
    this.#drain(leftover);
  }

  /** Asks the server to cancel whatever this backend runs, over a new connection. */
  async cancel(): Promise<void> {
    const t = this.#cancelTarget;
    const packet = Buffer.alloc(8 + 4 + this.secretKey.length);
    packet.writeInt32BE(packet.length, 0);
    packet.writeInt32BE(CANCEL_REQUEST_CODE, 4);
    packet.writeInt32BE(this.processId, 8);
    this.secretKey.copy(packet, 12);
    await sendCancel(t, packet);
  }

  /** Sends Terminate and closes. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#failPending(new PgQueryError('Upstream connection closed while an internal query was running.'));
    this.#markBroken('closed by the gateway');
    if (this.socket.destroyed) return;
    if (this.socket.writable) this.socket.end(TERMINATE);
    // The server closes after Terminate; don't let a silent peer hold the descriptor.
    setTimeout(() => this.socket.destroy(), 2000).unref();
  }

  /** Handles every whole message received so far (plus `chunk`), while attached. */
  #drain(chunk?: Buffer): void {
    try {
      if (chunk?.length) this.#stream.push(chunk);
      while (this.#attached) {
        const frame = this.#stream.next();
        if (!frame) break;
        this.#handle(frame.type, frame.body);
      }
    } catch (err) {
      this.#failPending(err as Error);
      this.#markBroken(`protocol error: ${(err as Error).message}`);
      this.socket.destroy();
    }
  }

  #handle(type: number, body: Buffer): void {
    const p = this.#pending;
    switch (type) {
      case BackendType.ParameterStatus: {
        const { name, value } = decodeParameterStatus(body);
        this.parameters.set(name, value);
        return;
      }
      case BackendType.NoticeResponse:
      case BackendType.NotificationResponse: // nobody is LISTENing on a pooled connection between sessions
        return;
      case BackendType.ErrorResponse: {
        const fields = decodeErrorFields(body);
        if (p) {
          current(p).error ??= fields;
          return;
        }
        // An error outside a query is the server ending the session (e.g. 57P01 admin shutdown).
        throw new ProtocolError(`upstream sent ${fields.severity} ${fields.code}: ${fields.message}`);
      }
      case BackendType.ReadyForQuery: {
        const status = decodeReadyForQuery(body);
        this.txStatus = status;
        if (!p) throw new ProtocolError('unexpected ReadyForQuery with no query running');
        if (--p.remaining > 0) {
          p.results.push({ rows: [], commandTags: [] });
          return;
        }
        clearTimeout(p.timer);
        this.#pending = undefined;
        p.resolve(p.results);
        return;
      }
      case BackendType.RowDescription:
      case BackendType.EmptyQueryResponse:
      case BackendType.NoData:
      case BackendType.ParseComplete:
      case BackendType.BindComplete:
      case BackendType.CloseComplete:
        if (p) return;
        break;
      case BackendType.CommandComplete:
        if (p) {
          current(p).commandTags.push(decodeCommandComplete(body));
          return;
        }
        break;
      case BackendType.DataRow:
        if (p) {
          p.bytes += body.length;
          if (p.bytes > MAX_QUERY_RESULT_BYTES) {
            throw new ProtocolError(`internal query returned more than ${MAX_QUERY_RESULT_BYTES} bytes; query() is meant for short control statements`);
          }
          // Simple-protocol results are text in the connection's client_encoding (UTF8 for the gateway's own SETs).
          current(p).rows.push(decodeDataRow(body).map((col) => (col === null ? null : col.toString('utf8'))));
          return;
        }
        break;
    }
    throw new ProtocolError(`unexpected message ${describeType(type)} from upstream ${p ? 'during an internal query' : 'while idle'}`);
  }

  #failPending(err: Error): void {
    const p = this.#pending;
    if (!p) return;
    this.#pending = undefined;
    clearTimeout(p.timer);
    p.reject(err instanceof PgQueryError ? err : new PgQueryError(`Upstream connection failed during an internal query: ${err.message}`));
  }

  #markBroken(reason: string): void {
    this.brokenReason ??= reason;
    if (reason.startsWith('socket')) this.#failPending(new PgQueryError(`Upstream connection ${reason}.`));
  }
}

/** Opens a connection (TLS like the session when it used TLS), writes the cancel packet, waits for close. */
function sendCancel(t: CancelTarget, packet: Buffer): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let socket: net.Socket = net.connect({ host: t.host, port: t.port });
    let settled = false;
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve();
    };
    const timer = setTimeout(() => finish(new PgQueryError(`CancelRequest to ${t.host}:${t.port} did not complete within ${t.timeoutMs} ms.`)), t.timeoutMs);
    const onError = (err: Error): void => finish(new PgQueryError(`CancelRequest to ${t.host}:${t.port} failed: ${err.message}`));
    socket.on('error', onError);
    const sendPacket = (s: net.Socket): void => {
      s.write(packet);
      // The server closes the connection once it has read the request.
      s.on('close', () => finish());
      s.end();
    };
    socket.once('connect', () => {
      if (!t.tls) return sendPacket(socket);
      socket.write(serialize.requestSsl());
      socket.once('data', (reply: Buffer) => {
        if (reply.length !== 1 || reply[0] !== 0x53 /* S */) {
          return finish(new PgQueryError(`Upstream ${t.host}:${t.port} refused TLS for the CancelRequest.`));
        }
        socket.pause();
        const secure = tls.connect({ ...t.tls, socket });
        secure.on('error', onError);
        secure.once('secureConnect', () => sendPacket(secure));
        socket = secure;
      });
    });
  });
}

/** The result of the query whose answer is being received. */
function current(p: PendingQuery): PgQueryResult {
  return p.results[p.results.length - 1];
}
