import net from 'node:net';
import tls from 'node:tls';
import type { Refusal } from '../core/admission';
import { ClientSession, type LifecycleCodes, type SessionDeps } from '../core/clientSession';
import type { CancelKey, CancelKeyStore } from '../core/state/cancelKeys';
import { MAX_ACCESS_TOKEN_BYTES } from '../identity/tokenSize';
import type { ClientPeer } from '../net/clientPeer';
import { PrefixedStream } from '../net/prefixedStream';
import { authenticationCleartextPassword, authenticationOk, backendKeyData, errorResponse, negotiateProtocolVersion, readyForQuery } from '../../protocols/postgres/backend';
import { FrontendType, SqlState } from '../../protocols/postgres/constants';
import { FrameError, ProtocolError } from '../../protocols/postgres/errors';
import { PgFramer, type Frame } from '../../protocols/postgres/framing';
import { decodePasswordMessage } from '../../protocols/postgres/frontend';
import { decodeStartupPacket, type StartupPacket } from '../../protocols/postgres/startup';
import { parameterStatusMessage } from './parameterStatusCache';
import type { PgPoolRegistry } from './pool';
import { PgRelay } from './relay';
import type { PgServerConnection } from './serverConnection';
import { sessionSettings, settingsToSql, StartupParamError } from './startupParams';

/** What a PostgreSQL session needs beyond what every session does. */
export interface PgSessionDeps extends SessionDeps {
  pools: Pick<PgPoolRegistry, 'get'>;
  cancelKeys: CancelKeyStore;
}

/** Sub-states of the handshake, in order. */
type Handshake = 'startup' | 'password' | 'connecting' | 'done';

/** The largest password message body: an access token and its NUL. Startup packets have their own, lower bound. */
const MAX_PASSWORD_MESSAGE = MAX_ACCESS_TOKEN_BYTES + 1;
/**
 * A longer password message is refused as a token too large for an access token; past
 * PostgreSQL's own limit on a message (1 GiB, MaxAllocSize) the length is not a password's but
 * a broken or hostile stream, refused as a protocol violation.
 */
const MAX_PLAUSIBLE_MESSAGE = 0x40000000;
const SETTINGS_TIMEOUT_MS = 10_000;
const EMPTY = Buffer.alloc(0);
/** Terminate: 'X' and a length of 4, nothing else. */
const isTerminate = (chunk: Buffer): boolean => chunk.length === 5 && chunk[0] === 0x58 && chunk.readUInt32BE(1) === 4;

/** The first byte of a TLS record carrying a handshake: a ClientHello sent without an SSLRequest (PG17 direct TLS). */
const TLS_HANDSHAKE_RECORD = 0x16;
/** Bytes a client may send after our 'S' before the TLS layer takes over (a ClientHello is far smaller). */
const MAX_EARLY_TLS_BYTES = 64 * 1024;

const CODES: LifecycleCodes<string> = {
  authTimeout: SqlState.PROTOCOL_VIOLATION,
  expired: SqlState.INVALID_AUTHORIZATION_SPECIFICATION,
  // PostgreSQL 14+'s own idle_session_timeout and idle_in_transaction_session_timeout (FATAL).
  idleTimeout: SqlState.IDLE_SESSION_TIMEOUT,
  idleInTransactionTimeout: SqlState.IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
  sessionDuration: SqlState.ADMIN_SHUTDOWN,
  end: {
    shutdown: SqlState.ADMIN_SHUTDOWN,
    killed: SqlState.ADMIN_SHUTDOWN,
    revoked: SqlState.ADMIN_SHUTDOWN,
    grant_withdrawn: SqlState.INVALID_AUTHORIZATION_SPECIFICATION,
  },
  refusal: {
    token: SqlState.INVALID_PASSWORD,
    revoked: SqlState.INVALID_PASSWORD,
    unknown_database: SqlState.INVALID_CATALOG_NAME,
    database_not_granted: SqlState.INVALID_AUTHORIZATION_SPECIFICATION,
    not_granted: SqlState.INVALID_AUTHORIZATION_SPECIFICATION,
    client_limit: SqlState.TOO_MANY_CONNECTIONS,
    identity_limit: SqlState.TOO_MANY_CONNECTIONS,
    limit: SqlState.TOO_MANY_CONNECTIONS,
    pool_exhausted: SqlState.TOO_MANY_CONNECTIONS,
    upstream_unavailable: SqlState.SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
    upstream_login_refused: SqlState.SQLSERVER_REJECTED_ESTABLISHMENT_OF_SQLCONNECTION,
  },
  proxyHeader: SqlState.PROTOCOL_VIOLATION,
};

/**
 * The grant's statementTimeout as the session's statement_timeout, over what the client's
 * startup asked for. It is part of the login's settings: a connection keeps it only for a
 * session with the very same settings, any other starts from DISCARD ALL (applySettings).
 */
function withStatementTimeout(settings: Record<string, string>, timeoutMs: number | undefined): Record<string, string> {
  return timeoutMs === undefined ? settings : { ...settings, statement_timeout: `${timeoutMs}ms` };
}

/**
 * One client connection on the PostgreSQL listener: startup (TLS negotiation, protocol
 * version), token, grant decision, pooled upstream, greeting, then the relay until the
 * client leaves, the upstream fails or the token expires.
 */
export class PgClientSession extends ClientSession<PgServerConnection, string> {
  readonly protocol = 'postgres';
  private handshake: Handshake = 'startup';
  private framer = new PgFramer({ startup: true, maxBodyLength: MAX_PASSWORD_MESSAGE });
  private parameters: Record<string, string> = {};
  private cancelKey?: CancelKey;
  /** Admission is running: client bytes wait. */
  private busy = false;
  /** The gateway is at limits.maxClientConnections: refused at the startup packet, as PostgreSQL says "too many clients". */
  private overLimit?: Refusal;
  /**
   * Set once 'S' is being written: bytes that arrive before the TLS layer takes over (the
   * ClientHello of a fast client) belong to TLS, never to the plaintext handshake.
   */
  private earlyTls?: Buffer[];

  constructor(socket: net.Socket, protected override readonly deps: PgSessionDeps, peer?: ClientPeer) {
    super(socket, deps, 'pg-', CODES, peer);
  }

  protected begin(): void {}

  /** Like PostgreSQL, answer "too many connections" once the startup packet (after any TLS negotiation) arrives. */
  protected override overClientLimit(r: Refusal): void {
    this.overLimit = r;
  }

  protected finalError(code: string, message: string): Buffer {
    return errorResponse({ severity: 'FATAL', code, message });
  }

  protected authTimeoutMessage(seconds: number): string {
    return `tokengate did not receive a startup message and access token within ${seconds}s; connect again and send the token as the password without delay`;
  }

  protected released(): void {
    if (this.cancelKey) this.deps.cancelKeys.release(this.cancelKey.processId);
  }

  /** Used by a CancelRequest that carried this session's key. */
  async cancelQuery(): Promise<void> {
    if (this.conn) await this.conn.cancel();
  }

  // ---- handshake ----------------------------------------------------------------

  protected readonly onHandshakeData = (chunk: Buffer): void => {
    if (this.earlyTls) {
      this.earlyTls.push(chunk);
      if (this.earlyTls.reduce((n, b) => n + b.length, 0) > MAX_EARLY_TLS_BYTES) this.abort('tls_error');
      return;
    }
    if (this.busy || this.closed) return;
    if (this.handshake === 'startup' && !this.tls && this.framer.buffered === 0 && chunk[0] === TLS_HANDSHAKE_RECORD) {
      this.startDirectTls(chunk);
      return;
    }
    // A Terminate instead of a startup packet (node-postgres sends its buffered one when end()
    // follows connect() at once): the client is leaving; close without a word, as PostgreSQL does.
    if (this.handshake === 'startup' && this.framer.buffered === 0 && isTerminate(chunk)) {
      this.closeQuietly('terminate_before_startup');
      return;
    }
    // In startup mode the framer yields one packet per push and holds what follows, so
    // drain it with empty pushes until it has nothing complete left.
    let input = chunk;
    for (;;) {
      let frames: Frame[];
      try {
        frames = this.framer.push(input);
      } catch (err) {
        if (this.handshake === 'password' && err instanceof FrameError && err.code === 'length_too_large' && err.messageType === FrontendType.PasswordMessage &&
          err.lengthField !== undefined && err.lengthField <= MAX_PLAUSIBLE_MESSAGE) {
          this.refuseOversizedToken(err.lengthField - 5, this.where()); // the body less its NUL
        } else {
          this.protocolViolation(err);
        }
        return;
      }
      if (frames.length === 0) return;
      for (let i = 0; i < frames.length && !this.closed; i++) {
        const rest = frames.length - i - 1 > 0 || this.framer.buffered > 0;
        if (this.handshake === 'startup') this.onStartupPacket(frames[i], rest);
        else if (this.handshake === 'password') this.onPasswordMessage(frames[i], rest);
        else {
          this.reject('protocol_violation', SqlState.PROTOCOL_VIOLATION, 'received a message before authentication finished; wait for ReadyForQuery');
        }
      }
      if (this.closed || this.busy || this.framer.buffered === 0) return;
      input = EMPTY;
    }
  };

  private onStartupPacket(frame: Frame, moreBuffered: boolean): void {
    let packet: StartupPacket;
    try {
      packet = decodeStartupPacket(frame.body);
    } catch (err) {
      this.protocolViolation(err);
      return;
    }
    switch (packet.kind) {
      case 'ssl':
        if (moreBuffered) {
          // Bytes sent behind an SSLRequest would be read as if they came over TLS (CVE-2021-23214).
          this.reject('protocol_violation', SqlState.PROTOCOL_VIOLATION, 'received unencrypted data after an SSL request; this is a protocol violation');
          return;
        }
        if (this.tls || !this.deps.tlsContext()) {
          this.stream.write('N');
          return;
        }
        this.earlyTls = [];
        this.stream.write('S', () => this.upgradeToTls());
        return;
      case 'gssenc':
        this.stream.write('N');
        return;
      case 'cancel':
        this.handleCancel(packet.processId, packet.secretKey);
        return;
      case 'unsupported':
        this.reject('unsupported_protocol', SqlState.FEATURE_NOT_SUPPORTED,
          `unsupported frontend protocol ${packet.code >>> 16}.${packet.code & 0xffff}: tokengate speaks protocol 3.0; use a PostgreSQL 7.4 or newer client`);
        return;
      case 'startup':
        this.onStartup(packet);
        return;
    }
  }

  private onStartup(packet: Extract<StartupPacket, { kind: 'startup' }>): void {
    if (packet.major !== 3) {
      this.reject('unsupported_protocol', SqlState.FEATURE_NOT_SUPPORTED,
        `unsupported frontend protocol ${packet.major}.${packet.minor}: tokengate speaks protocol 3.0`);
      return;
    }
    if (this.overLimit) {
      this.refuse(this.overLimit, { role: packet.parameters.user, database: packet.parameters.database });
      return;
    }
    this.parameters = packet.parameters;
    const replication = packet.parameters.replication;
    if (replication !== undefined && !['false', 'off', 'no', '0'].includes(replication.toLowerCase())) {
      this.reject('replication_refused', SqlState.FEATURE_NOT_SUPPORTED,
        'replication connections are not allowed through tokengate; connect without the replication parameter');
      return;
    }
    if (!packet.parameters.user) {
      this.reject('no_role', SqlState.INVALID_AUTHORIZATION_SPECIFICATION,
        'no user name in the startup message; set the user to the role you were granted (for example "reader")');
      return;
    }
    if (!this.tls && !this.plaintextAllowed()) {
      this.reject('plaintext_refused', SqlState.INVALID_AUTHORIZATION_SPECIFICATION,
        'tokengate accepts access tokens only over TLS from this address; connect with sslmode=require (or verify-full)');
      return;
    }
    const out: Buffer[] = [];
    const options = Object.keys(packet.protocolOptions);
    if (packet.minor > 0 || options.length > 0) out.push(negotiateProtocolVersion(0, options));
    out.push(authenticationCleartextPassword());
    this.framer.expectTyped();
    this.handshake = 'password';
    this.stream.write(Buffer.concat(out));
  }

  private onPasswordMessage(frame: Frame, moreBuffered: boolean): void {
    if (frame.type !== FrontendType.PasswordMessage) {
      this.reject('protocol_violation', SqlState.PROTOCOL_VIOLATION,
        `expected a password message carrying the access token, got message type "${String.fromCharCode(frame.type)}"`);
      return;
    }
    if (moreBuffered) {
      this.reject('protocol_violation', SqlState.PROTOCOL_VIOLATION, 'received messages after the password before authentication finished');
      return;
    }
    let token: string;
    try {
      token = decodePasswordMessage(frame.body);
    } catch (err) {
      this.protocolViolation(err);
      return;
    }
    if (token.trim() === '') {
      this.reject('no_token', SqlState.INVALID_PASSWORD,
        'no access token: put your Okta access token where the password goes (PGPASSWORD, the password of the connection string, or the driver\'s password option)', this.where());
      return;
    }
    this.handshake = 'connecting';
    this.busy = true;
    this.stream.pause();
    this.admit(token).catch((err) => {
      this.reject('internal_error', SqlState.INTERNAL_ERROR, `tokengate failed while opening the session: ${(err as Error).message}`);
    });
  }

  /** The role and database the startup message asked for, for refusals. */
  private where(): { role: string; database: string } {
    return { role: this.parameters.user, database: this.parameters.database || this.parameters.user };
  }

  /** Verify the token, decide the grant, get an upstream connection, greet the client. */
  private async admit(token: string): Promise<void> {
    const where = this.where();
    const { role, database } = where;
    const identity = await this.identify(token.trim(), where);
    if (!identity || this.closed) return;
    const { admission } = this.deps;
    const decision = admission.decide(identity, 'postgres', database, role);
    if (!decision.ok) {
      this.refuse(decision, where);
      return;
    }
    const granted = decision.value;
    let settingsSql: string;
    try {
      settingsSql = settingsToSql(withStatementTimeout(sessionSettings(this.parameters, identity.sub), this.statementTimeoutMs(granted.grant.name)));
    } catch (err) {
      if (!(err instanceof StartupParamError)) throw err;
      this.reject('bad_startup_parameter', SqlState.PROTOCOL_VIOLATION, err.message, where);
      return;
    }
    if (!(await this.takeLease(granted.grant.name, where))) return;
    const acquired = await admission.acquire(granted.upstream.name, granted.role.name,
      (upstream, r) => this.deps.pools.get(upstream, r, granted.database));
    if (!acquired.ok) {
      this.refuse(acquired, where);
      return;
    }
    const { conn, pool } = acquired.value;
    if (this.closed) {
      pool.release(conn, true);
      return;
    }
    this.conn = conn;
    this.pool = pool;
    if (conn.sessionSettings !== settingsSql && !(await this.applySettings(conn, settingsSql, where))) return;
    if (this.closed) {
      this.releaseUpstream(true);
      return;
    }
    this.greetAndRelay({ grant: granted.grant.name, upstream: granted.upstream.name, role, database }, granted.database);
  }

  /** Another login's settings may be in force: start from a fresh DISCARD ALL, in the same write. */
  private async applySettings(conn: PgServerConnection, settingsSql: string, where: { role: string; database: string }): Promise<boolean> {
    let discard, result;
    try {
      [discard, result] = await conn.queries(['DISCARD ALL', settingsSql], SETTINGS_TIMEOUT_MS);
    } catch (err) {
      this.releaseUpstream(false);
      this.reject('upstream_unavailable', SqlState.CONNECTION_FAILURE,
        'the upstream connection failed while applying your session parameters; reconnect', { ...where, detail: (err as Error).message });
      return false;
    }
    conn.sessionSettings = discard.error || result.error ? '' : settingsSql;
    if (discard.error) {
      this.releaseUpstream(false);
      this.reject('upstream_unavailable', SqlState.CONNECTION_FAILURE,
        'the upstream connection could not be reset for your session; reconnect', { ...where, detail: discard.error.message });
      return false;
    }
    if (result.error) {
      this.releaseUpstream(conn.txStatus === 'I');
      this.reject('bad_startup_parameter', result.error.code ?? SqlState.PROTOCOL_VIOLATION,
        `the upstream refused a startup parameter: ${result.error.message}`, where);
      return false;
    }
    return true;
  }

  private greetAndRelay(access: { grant: string; upstream: string; role: string; database: string }, upstreamDatabase: string): void {
    const conn = this.conn!;
    this.cancelKey = this.deps.cancelKeys.issue(this.id);
    const greeting: Buffer[] = [authenticationOk()];
    for (const [name, value] of conn.parameters) greeting.push(parameterStatusMessage(name, value));
    greeting.push(backendKeyData(this.cancelKey.processId, this.cancelKey.secretKey), readyForQuery('I'));
    this.accepted(access, { upstreamDatabase, applicationName: this.parameters.application_name });
    this.handshake = 'done';
    this.busy = false;
    this.stream.removeListener('data', this.onHandshakeData);
    this.startRelay(new PgRelay({
      client: this.stream,
      server: conn,
      audit: this.deps.audit,
      sessionId: this.id,
      identity: this.identityFields(),
      greeting: Buffer.concat(greeting),
      queryStats: this.queryStats(),
      onEnd: this.relayEnded,
    }));
    this.stream.resume();
  }

  // ---- TLS ---------------------------------------------------------------------

  private upgradeToTls(): void {
    const early = Buffer.concat(this.earlyTls ?? []);
    this.earlyTls = undefined;
    if (this.closed) return;
    this.socket.removeListener('data', this.onHandshakeData);
    const transport = early.length > 0 ? (new PrefixedStream(this.socket, early) as unknown as net.Socket) : this.socket;
    this.attachTls(new tls.TLSSocket(transport, { isServer: true, secureContext: this.deps.tlsContext() }));
  }

  /** PG17 `sslnegotiation=direct`: the ClientHello arrives first and must negotiate ALPN "postgresql". */
  private startDirectTls(firstChunk: Buffer): void {
    const secureContext = this.deps.tlsContext();
    if (!secureContext) {
      this.abort('direct_tls_without_certificate');
      return;
    }
    this.socket.removeListener('data', this.onHandshakeData);
    const wrapped = new tls.TLSSocket(new PrefixedStream(this.socket, firstChunk) as unknown as net.Socket, {
      isServer: true,
      secureContext,
      ALPNProtocols: ['postgresql'],
    });
    wrapped.once('secure', () => {
      if (wrapped.alpnProtocol !== 'postgresql') {
        this.abort('direct_tls_without_alpn');
        wrapped.destroy();
      }
    });
    this.attachTls(wrapped);
  }

  private attachTls(secure: tls.TLSSocket): void {
    this.framer = new PgFramer({ startup: true, maxBodyLength: MAX_PASSWORD_MESSAGE });
    this.useTls(secure);
  }

  // ---- cancel ------------------------------------------------------------------

  private handleCancel(processId: number, secretKey: Buffer): void {
    const target = this.deps.cancelKeys.lookup(processId, secretKey);
    // Like PostgreSQL, a CancelRequest gets no answer either way: just close.
    this.closeQuietly('cancel_request');
    if (target === undefined) {
      this.deps.cancelKeys.forward?.(processId, secretKey);
      return;
    }
    this.deps.registry.get(target)?.cancelQuery().catch(() => undefined);
  }

  // ---- endings -----------------------------------------------------------------

  private protocolViolation(err: unknown): void {
    if (err instanceof FrameError || err instanceof ProtocolError) {
      this.reject('protocol_violation', SqlState.PROTOCOL_VIOLATION, `invalid message from the client: ${err.message}`);
    } else {
      this.reject('internal_error', SqlState.INTERNAL_ERROR, `tokengate could not process the message: ${(err as Error).message}`);
    }
  }
}
