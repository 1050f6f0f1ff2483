import type * as net from 'node:net';
import { encodeQuery, encodeSimpleCommand } from '../../protocols/mysql/command';
import { COM_QUERY, COM_QUIT, COM_STMT_EXECUTE, ERR_HEADER } from '../../protocols/mysql/constants';
import { encodePacket } from '../../protocols/mysql/framing';
import { readLenencBytes } from '../../protocols/mysql/lenenc';
import { decodeErr } from '../../protocols/mysql/packets';
import { ResponseTracker } from '../../protocols/mysql/response';
import { MysqlPacketReader } from './packetReader';

export interface MysqlCommandResult {
  /** The last OK packet of the response, when there was one. */
  ok?: { affectedRows: bigint; statusFlags: number; info: string };
  /** The ERR that ended the response (the connection stays usable). */
  error?: { code: number; sqlState?: string; message: string };
  /** Text rows of every result set of a COM_QUERY, in order (internal statements only: bounded). */
  rows?: (string | null)[][];
}

/** An internal command could not complete (socket failure, timeout, protocol error, misuse). */
export class MysqlCommandError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MysqlCommandError';
  }
}

/** Everything connectMysqlUpstream learned during login. */
export interface MysqlServerConnectionInit {
  socket: net.Socket;
  /** Holds bytes received after the login OK (normally none). */
  reader: MysqlPacketReader;
  threadId: number;
  serverVersion: string;
  /** Negotiated capabilities (what the gateway requested ∩ the server's). */
  capabilities: number;
  characterSet: number;
  statusFlags: number;
  /** Logs in again with the same credentials and TLS (for KILL QUERY). */
  openSideConnection(): Promise<MysqlServerConnection>;
}

/** Bound on what command() buffers: it runs reset and control statements, not user queries. */
const MAX_INTERNAL_RESPONSE_BYTES = 1024 * 1024;
const QUIT_PACKET = encodePacket(0, encodeSimpleCommand(COM_QUIT));

let nextId = 1;

/** One command of a pipelined batch that has a response. */
interface PendingStep {
  /** Its position in the batch (and in the results). */
  index: number;
  tracker: ResponseTracker;
  textRows: boolean;
  rows: (string | null)[][];
  bytes: number;
}

/** Commands written together; their responses arrive in order. */
interface PendingBatch {
  resolve(r: MysqlCommandResult[]): void;
  reject(e: Error): void;
  steps: PendingStep[];
  results: MysqlCommandResult[];
  timer: NodeJS.Timeout;
}

/**
 * One authenticated upstream MySQL/MariaDB session. While attached it reads the socket itself
 * (internal commands; an unsolicited ERR when the server kills the connection); the relay
 * detach()es it to take the raw socket over and attach()es it back at a response boundary.
 */
export class MysqlServerConnection {
  readonly id = nextId++;
  readonly socket: net.Socket;
  /** The upstream connection id (CONNECTION_ID(), the target of KILL). */
  readonly threadId: number;
  readonly serverVersion: string;
  /** Negotiated capabilities: the relay and the ResponseTracker must use these. */
  readonly capabilities: number;
  /** Collation id the session was opened with. */
  readonly characterSet: number;
  /** Server status flags of the last OK/EOF seen (SERVER_STATUS_IN_TRANS etc.). */
  statusFlags: number;

  readonly #reader: MysqlPacketReader;
  readonly #openSideConnection: () => Promise<MysqlServerConnection>;
  #brokenReason: string | undefined;
  #attached = false;
  #closed = false;
  #pending: PendingBatch | undefined;
  readonly #onData = (chunk: Buffer): void => {
    this.#reader.push(chunk);
    this.#drain();
  };

  constructor(init: MysqlServerConnectionInit) {
    this.socket = init.socket;
    this.threadId = init.threadId;
    this.serverVersion = init.serverVersion;
    this.capabilities = init.capabilities;
    this.characterSet = init.characterSet;
    this.statusFlags = init.statusFlags;
    this.#openSideConnection = init.openSideConnection;
    this.#reader = new MysqlPacketReader(MAX_INTERNAL_RESPONSE_BYTES);
    const leftover = init.reader.takeRemaining();
    if (leftover.length) this.#reader.push(leftover);
    // Kept for the connection's whole life, also while detached: an unhandled 'error' would crash the process.
    this.socket.on('error', (err) => this.#markBroken(`socket error: ${err.message}`));
    this.socket.on('close', () => this.#markBroken('socket closed'));
    this.attach();
  }

  get broken(): boolean {
    return this.#brokenReason !== undefined || this.socket.destroyed;
  }

  /** Why the connection became unusable (for logs; never contains a secret). */
  get brokenReason(): string | undefined {
    return this.#brokenReason ?? (this.socket.destroyed ? 'socket destroyed' : undefined);
  }

  get attached(): boolean {
    return this.#attached;
  }

  /**
   * Sends one command (sequence id 0) outside the relay and resolves when its whole response
   * has arrived. A server ERR is returned as result.error (the connection stays usable);
   * socket errors, timeouts and protocol errors reject and mark the connection broken.
   */
  async command(payload: Buffer, timeoutMs: number): Promise<MysqlCommandResult> {
    const [result] = await this.commands([payload], timeoutMs);
    return result;
  }

  /**
   * Pipelines commands: writes them all at once and resolves with one result per command,
   * in order, when the last response has arrived. A command that fails with ERR does not stop
   * the ones after it (the server runs each), so batch only commands that are safe to run
   * regardless. One write and one wait instead of one per command: the pool's reset uses it.
   */
  commands(payloads: Buffer[], timeoutMs: number): Promise<MysqlCommandResult[]> {
    if (this.broken) return Promise.reject(new MysqlCommandError(`Upstream connection ${this.id} is broken (${this.brokenReason}).`));
    if (!this.#attached) return Promise.reject(new MysqlCommandError('command() called while the relay has the connection detached.'));
    if (this.#pending) return Promise.reject(new MysqlCommandError('command() called while another internal command is running.'));
    if (payloads.length === 0 || payloads.some((p) => p.length === 0)) {
      return Promise.reject(new MysqlCommandError('command() needs payloads starting with a command byte.'));
    }
    const steps: PendingStep[] = [];
    const results: MysqlCommandResult[] = [];
    for (let index = 0; index < payloads.length; index++) {
      const payload = payloads[index];
      const tracker = new ResponseTracker(this.capabilities);
      const cmd = payload[0];
      let state;
      try {
        state = tracker.begin(cmd, { cursor: cmd === COM_STMT_EXECUTE && ResponseTracker.isCursorFlags(payload[5]) });
      } catch (err) {
        return Promise.reject(new MysqlCommandError(`Cannot run this command internally: ${(err as Error).message}`));
      }
      results.push({}); // COM_STMT_CLOSE and the like have no response: their result stays empty
      if (state !== 'done') steps.push({ index, tracker, textRows: cmd === COM_QUERY, rows: [], bytes: 0 });
    }
    this.socket.write(payloads.length === 1 ? encodePacket(0, payloads[0]) : Buffer.concat(payloads.map((p) => encodePacket(0, p))));
    if (steps.length === 0) return Promise.resolve(results);
    return new Promise<MysqlCommandResult[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#markBroken('internal command timed out');
        this.#failPending(new MysqlCommandError(`Upstream did not answer an internal command within ${timeoutMs} ms.`));
      }, timeoutMs);
      this.#pending = { resolve, reject, steps, results, timer };
      // Bytes may already be buffered (e.g. handed back by attach()).
      this.#drain();
    });
  }

  /** COM_QUERY: runs one SQL text. */
  query(sql: string, timeoutMs: number): Promise<MysqlCommandResult> {
    return this.command(encodeQuery(sql), timeoutMs);
  }

  /**
   * Hands the socket to the relay and returns bytes received but not consumed (normally none).
   * The socket stays paused, so nothing is lost, until the relay adds its 'data' listener;
   * that resumes it, as on a fresh stream.
   */
  detach(): Buffer {
    if (this.#pending) throw new MysqlCommandError('detach() called while an internal command is running.');
    this.socket.pause();
    this.socket.removeListener('data', this.#onData);
    this.#attached = false;
    this.socket.on('newListener', this.#resumeOnDataListener);
    return this.#reader.takeRemaining();
  }

  // resume() only schedules the flow, so the listener being added is in place when data arrives.
  readonly #resumeOnDataListener = (event: string | symbol): void => {
    if (event !== 'data') return;
    this.socket.removeListener('newListener', this.#resumeOnDataListener);
    this.socket.resume();
  };

  /**
   * The relay gives the socket back at a response boundary, having removed its own 'data'
   * listener. `leftover`: bytes it read past that point; `statusFlags`: those of the last
   * OK/EOF it relayed (transaction state), if it followed them.
   */
  attach(leftover?: Buffer, statusFlags?: number): void {
    if (this.#attached) return;
    this.socket.removeListener('newListener', this.#resumeOnDataListener);
    if (statusFlags !== undefined) this.statusFlags = statusFlags;
    if (leftover?.length) this.#reader.push(leftover);
    this.#attached = true;
    this.socket.on('data', this.#onData);
    this.socket.resume();
    this.#drain();
  }

  /**
   * Stops the statement this connection is running: logs in again with the same credentials
   * and TLS, runs KILL QUERY <threadId> and closes that side connection. A user may always
   * kill its own threads, so no extra privilege is needed.
   */
  async killQuery(timeoutMs = 5000): Promise<void> {
    const side = await this.#openSideConnection();
    try {
      const r = await side.query(`KILL QUERY ${this.threadId}`, timeoutMs);
      if (r.error) {
        throw new MysqlCommandError(`KILL QUERY ${this.threadId} was refused by the upstream: ERROR ${r.error.code}: ${r.error.message}`);
      }
    } finally {
      side.close();
    }
  }

  /** Sends COM_QUIT (when the gateway holds the socket at a boundary) and closes. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const clean = this.#attached && !this.broken;
    this.#failPending(new MysqlCommandError('Upstream connection closed while an internal command was running.'));
    this.#markBroken('closed by the gateway');
    if (this.socket.destroyed) return;
    // Detached, the relay may have written part of a packet: COM_QUIT would become its payload.
    if (!clean || !this.socket.writable) {
      this.socket.destroy();
      return;
    }
    this.socket.end(QUIT_PACKET);
    // The server closes after COM_QUIT; don't let a silent peer hold the descriptor.
    setTimeout(() => this.socket.destroy(), 2000).unref();
  }

  #drain(): void {
    try {
      for (let p = this.#reader.next(); p && this.#attached; p = this.#reader.next()) {
        this.#handle(p.payload);
      }
    } catch (err) {
      const message = err instanceof MysqlCommandError ? err.message : `protocol error: ${(err as Error).message}`;
      this.#markBroken(message);
      this.#failPending(new MysqlCommandError(`Upstream connection ${this.id}: ${message}`));
      this.socket.destroy();
    }
  }

  #handle(payload: Buffer): void {
    const p = this.#pending;
    if (!p) {
      if (payload[0] === ERR_HEADER) {
        // Unsolicited ERR: the server is ending this session (KILL, shutdown, wait_timeout).
        const e = decodeErr(payload);
        throw new MysqlCommandError(`the upstream ended the session: ERROR ${e.code}: ${e.message}`);
      }
      throw new MysqlCommandError(`unexpected packet (first byte 0x${(payload[0] ?? 0).toString(16)}) from the upstream while idle`);
    }
    const step = p.steps[0];
    const rowsBefore = step.tracker.outcome?.rows ?? 0;
    const done = step.tracker.onPacket(payload, payload.length) === 'done';
    const outcome = step.tracker.outcome;
    if (outcome && outcome.rows > rowsBefore && step.textRows) {
      step.bytes += payload.length;
      if (step.bytes > MAX_INTERNAL_RESPONSE_BYTES) {
        throw new MysqlCommandError(`an internal command returned more than ${MAX_INTERNAL_RESPONSE_BYTES} bytes of rows; command() is meant for short control statements`);
      }
      step.rows.push(decodeTextRow(payload));
    }
    if (!done || !outcome) return;
    if (outcome.statusFlags !== undefined) this.statusFlags = outcome.statusFlags;
    const result = p.results[step.index];
    if (outcome.error) result.error = outcome.error;
    for (const r of outcome.results) {
      if (r.kind === 'ok') result.ok = { affectedRows: r.affectedRows, statusFlags: r.statusFlags, info: r.info };
    }
    if (step.textRows && outcome.results.some((r) => r.kind === 'rows')) result.rows = step.rows;
    p.steps.shift();
    if (p.steps.length > 0) return;
    clearTimeout(p.timer);
    this.#pending = undefined;
    p.resolve(p.results);
  }

  #failPending(err: Error): void {
    const p = this.#pending;
    if (!p) return;
    this.#pending = undefined;
    clearTimeout(p.timer);
    p.reject(err);
  }

  #markBroken(reason: string): void {
    this.#brokenReason ??= reason;
    if (reason.startsWith('socket')) this.#failPending(new MysqlCommandError(`Upstream connection ${this.id}: ${reason}.`));
  }
}

/** A text-protocol row: length-encoded strings, 0xFB for NULL. */
function decodeTextRow(payload: Buffer): (string | null)[] {
  const row: (string | null)[] = [];
  let offset = 0;
  while (offset < payload.length) {
    if (payload[offset] === 0xfb) {
      row.push(null);
      offset++;
      continue;
    }
    const v = readLenencBytes(payload, offset, 'text row value');
    row.push(v.value.toString('utf8'));
    offset = v.next;
  }
  return row;
}
