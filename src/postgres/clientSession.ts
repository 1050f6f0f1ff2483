import { randomId } from '../core/random';
import net from 'node:net';
import tls from 'node:tls';
import type { Config } from '../config/schema';
import type { Identity } from '../identity/types';
import { TokenRejectedError } from '../identity/types';
import { decide } from '../grants/decide';
import type { AuditLog } from '../audit/auditLog';
import { identityFields, type IdentityFields } from '../audit/events';
import type { PgServerConnection } from './serverConnection';
import { PoolExhaustedError } from '../core/pool';
import { authenticationCleartextPassword, authenticationOk, backendKeyData, errorResponse, negotiateProtocolVersion, parameterStatus, readyForQuery } from '../../protocols/postgres/backend';
import { SqlState } from '../../protocols/postgres/constants';
import { FrameError, ProtocolError } from '../../protocols/postgres/errors';
import { PgFramer } from '../../protocols/postgres/framing';
import { decodePasswordMessage } from '../../protocols/postgres/frontend';
import { decodeStartupPacket } from '../../protocols/postgres/startup';
import type { Frame } from '../../protocols/postgres/framing';
import type { StartupPacket } from '../../protocols/postgres/startup';
import { isLoopbackAddress, formatRemote } from '../net/address';
import { PrefixedStream } from '../net/prefixedStream';
import type { CancelRegistry, Cancellable } from './cancelRegistry';
import { sessionSettings, settingsToSql, StartupParamError } from './startupParams';
import { PgRelay, type RelayEnd } from './relay';
import { endWith } from '../net/endWith';

/** What a session needs from the rest of the gateway. */
export interface PgSessionDeps {
  config: Config;
  verifier: { verify(token: string): Promise<Identity> };
  pools: { get(upstream: Config['upstreams'][string], role: Config['upstreams'][string]['roles'][string], database: string): PgPoolLike };
  audit: AuditLog;
  cancels: CancelRegistry;
  tlsContext?: tls.SecureContext;
  /** Called once when the session is over (the listener forgets it). */
  onClose?: (session: PgClientSession) => void;
}

export interface PgPoolLike {
  acquire(): Promise<PgServerConnection>;
  release(conn: PgServerConnection, reusable: boolean): void;
}

type State = 'startup' | 'password' | 'connecting' | 'relay' | 'closed';

/** A password message can hold a large token, but nothing near PG's 1 GB limit. */
const MAX_PASSWORD_MESSAGE = 64 * 1024;
/** How long an expiring session may take to reach a message boundary before it is cut. */
const EXPIRY_DRAIN_MS = 10_000;
const SETTINGS_TIMEOUT_MS = 10_000;
const EMPTY = Buffer.alloc(0);

/**
 * One client connection on the PostgreSQL listener: startup (TLS negotiation, protocol
 * version), token, grant decision, pooled upstream, greeting, then the relay until the
 * client leaves, the upstream fails or the token expires.
 */
export class PgClientSession implements Cancellable {
  readonly id = randomId('pg-', 6);
  private state: State = 'startup';
  private stream: net.Socket | tls.TLSSocket;
  private tls = false;
  private framer = new PgFramer({ startup: true, maxBodyLength: MAX_PASSWORD_MESSAGE });
  private readonly remote: string;
  private readonly loopback: boolean;
  private readonly startedAt = Date.now();
  private authTimer?: NodeJS.Timeout;
  private parameters: Record<string, string> = {};
  private identity?: Identity;
  private conn?: PgServerConnection;
  private pool?: PgPoolLike;
  private relay?: PgRelay;
  private cancelKey?: { processId: number; secretKey: Buffer };
  private busy = false;

  constructor(private readonly socket: net.Socket, private readonly deps: PgSessionDeps) {
    this.stream = socket;
    this.remote = formatRemote(socket);
    this.loopback = isLoopbackAddress(socket.remoteAddress);
  }

  start(): void {
    this.socket.setNoDelay(true);
    this.socket.on('data', this.onHandshakeData);
    this.socket.on('error', () => this.abort('client_error'));
    this.socket.on('close', () => this.abort('client_closed'));
    this.authTimer = setTimeout(() => {
      this.reject('auth_timeout', SqlState.PROTOCOL_VIOLATION,
        `tokengate did not receive a startup message and access token within ${this.deps.config.session.authTimeoutMs / 1000}s; connect again and send the token as the password without delay`);
    }, this.deps.config.session.authTimeoutMs);
  }

  /** Used by a CancelRequest that carried this session's key. */
  async cancelUpstreamQuery(): Promise<void> {
    if (this.conn) await this.conn.cancel();
  }

  /** End the session from outside (gateway shutdown). */
  shutdown(message: string): void {
    if (this.state === 'relay' && this.relay) this.relay.stop('shutdown', { code: SqlState.ADMIN_SHUTDOWN, message });
    else this.reject('shutdown', SqlState.ADMIN_SHUTDOWN, message);
  }

  // ---- handshake ----------------------------------------------------------------

  private readonly onHandshakeData = (chunk: Buffer): void => {
    if (this.busy || this.state === 'closed') return;
    if (this.state === 'startup' && !this.tls && this.framer.buffered === 0 && chunk[0] === 0x16) {
      this.startDirectTls(chunk);
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
        this.protocolViolation(err);
        return;
      }
      if (frames.length === 0) return;
      for (let i = 0; i < frames.length && !this.isClosed(); i++) {
        const rest = frames.length - i - 1 > 0 || this.framer.buffered > 0;
        if (this.state === 'startup') this.onStartupPacket(frames[i], rest);
        else if (this.state === 'password') this.onPasswordMessage(frames[i], rest);
        else {
          this.reject('protocol_violation', SqlState.PROTOCOL_VIOLATION, 'received a message before authentication finished; wait for ReadyForQuery');
        }
      }
      if (this.isClosed() || this.busy || this.framer.buffered === 0) return;
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
        if (this.tls || !this.deps.tlsContext) {
          this.stream.write('N');
          return;
        }
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
    this.state = 'password';
    this.stream.write(Buffer.concat(out));
  }

  private plaintextAllowed(): boolean {
    const t = this.deps.config.tls;
    return t.allowPlaintextFromAnywhere || (this.loopback && t.allowPlaintextFromLoopback);
  }

  private onPasswordMessage(frame: Frame, moreBuffered: boolean): void {
    if (frame.type !== 0x70 /* 'p' */) {
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
    this.state = 'connecting';
    this.busy = true;
    this.stream.pause();
    this.admit(token).catch((err) => {
      this.reject('internal_error', SqlState.INTERNAL_ERROR, `tokengate failed while opening the session: ${(err as Error).message}`);
    });
  }

  /** Verify the token, decide the grant, get an upstream connection, greet the client. */
  private async admit(token: string): Promise<void> {
    const { config } = this.deps;
    const role = this.parameters.user;
    const database = this.parameters.database || role;
    try {
      this.identity = await this.deps.verifier.verify(token.trim());
    } catch (err) {
      if (err instanceof TokenRejectedError) {
        this.reject(err.reason, SqlState.INVALID_PASSWORD, err.message, { role, database });
        return;
      }
      throw err;
    }
    if (this.isClosed()) return;
    const decision = decide(config, this.identity, 'postgres', database, role);
    if (!decision.ok) {
      const code = decision.reason === 'unknown_database' ? SqlState.INVALID_CATALOG_NAME : SqlState.INVALID_AUTHORIZATION_SPECIFICATION;
      this.reject(decision.reason, code, decision.message, { role, database });
      return;
    }
    let settingsSql: string;
    try {
      settingsSql = settingsToSql(sessionSettings(this.parameters, this.identity.sub));
    } catch (err) {
      if (!(err instanceof StartupParamError)) throw err;
      this.reject('bad_startup_parameter', SqlState.PROTOCOL_VIOLATION, err.message, { role, database });
      return;
    }
    const pool = this.deps.pools.get(decision.upstream, decision.role, decision.database);
    let conn: PgServerConnection;
    try {
      conn = await pool.acquire();
    } catch (err) {
      if (err instanceof PoolExhaustedError) {
        this.reject('pool_exhausted', SqlState.TOO_MANY_CONNECTIONS, err.message, { role, database });
      } else {
        this.reject('upstream_unavailable', SqlState.SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
          `tokengate could not open a connection to upstream "${decision.upstream.name}" for role "${role}"; retry shortly, and if it persists tell a DBA (the gateway's audit log has the cause)`,
          { role, database, detail: (err as Error).message });
      }
      return;
    }
    if (this.isClosed()) {
      pool.release(conn, true);
      return;
    }
    this.conn = conn;
    this.pool = pool;
    if (conn.sessionSettings !== settingsSql) {
      // Another login's settings may be in force: start from a fresh DISCARD ALL, in the same write.
      let discard, result;
      try {
        [discard, result] = await conn.queries(['DISCARD ALL', settingsSql], SETTINGS_TIMEOUT_MS);
      } catch (err) {
        this.releaseUpstream(false);
        this.reject('upstream_unavailable', SqlState.CONNECTION_FAILURE,
          'the upstream connection failed while applying your session parameters; reconnect', { role, database, detail: (err as Error).message });
        return;
      }
      conn.sessionSettings = discard.error || result.error ? '' : settingsSql;
      if (discard.error) {
        this.releaseUpstream(false);
        this.reject('upstream_unavailable', SqlState.CONNECTION_FAILURE,
          'the upstream connection could not be reset for your session; reconnect', { role, database, detail: discard.error.message });
        return;
      }
      if (result.error) {
        this.releaseUpstream(conn.txStatus === 'I');
        this.reject('bad_startup_parameter', result.error.code ?? SqlState.PROTOCOL_VIOLATION,
          `the upstream refused a startup parameter: ${result.error.message}`, { role, database });
        return;
      }
    }
    if (this.isClosed()) {
      this.releaseUpstream(true);
      return;
    }
    this.greetAndRelay(decision.grant.name, decision.upstream.name, decision.database, role, database);
  }

  private greetAndRelay(grant: string, upstream: string, upstreamDatabase: string, role: string, database: string): void {
    const conn = this.conn!;
    clearTimeout(this.authTimer);
    this.cancelKey = this.deps.cancels.issue(this);
    const greeting: Buffer[] = [authenticationOk()];
    for (const [name, value] of conn.parameters) greeting.push(parameterStatusMessage(name, value));
    greeting.push(backendKeyData(this.cancelKey.processId, this.cancelKey.secretKey), readyForQuery('I'));
    this.deps.audit.write({
      event: 'connection_accepted', sessionId: this.id, protocol: 'postgres', remote: this.remote, tls: this.tls,
      grant, upstream, role, database, upstreamDatabase, applicationName: this.parameters.application_name, ...this.identityFields(),
    });
    this.state = 'relay';
    this.busy = false;
    this.stream.removeListener('data', this.onHandshakeData);
    this.relay = new PgRelay({
      client: this.stream,
      server: conn,
      audit: this.deps.audit,
      sessionId: this.id,
      identity: this.identityFields(),
      greeting: Buffer.concat(greeting),
      expiresAtMs: this.identity!.expiresAt * 1000 + this.deps.config.session.expiryGraceMs,
      onEnd: (end) => this.onRelayEnd(end),
    });
    this.relay.start();
    this.stream.resume();
  }

  private onRelayEnd(end: RelayEnd): void {
    this.releaseUpstream(end.upstreamReusable);
    this.finish(end.reason, end.bytesFromClient, end.bytesToClient, end.queries, end.upstreamReusable);
  }

  // ---- TLS ---------------------------------------------------------------------

  private upgradeToTls(): void {
    if (this.isClosed()) return;
    this.socket.removeListener('data', this.onHandshakeData);
    this.attachTls(new tls.TLSSocket(this.socket, { isServer: true, secureContext: this.deps.tlsContext }));
  }

  /** PG17 `sslnegotiation=direct`: the ClientHello arrives first and must negotiate ALPN "postgresql". */
  private startDirectTls(firstChunk: Buffer): void {
    if (!this.deps.tlsContext) {
      this.abort('direct_tls_without_certificate');
      return;
    }
    this.socket.removeListener('data', this.onHandshakeData);
    const wrapped = new tls.TLSSocket(new PrefixedStream(this.socket, firstChunk) as unknown as net.Socket, {
      isServer: true,
      secureContext: this.deps.tlsContext,
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
    this.tls = true;
    this.stream = secure;
    this.framer = new PgFramer({ startup: true, maxBodyLength: MAX_PASSWORD_MESSAGE });
    secure.on('data', this.onHandshakeData);
    secure.on('error', () => this.abort('tls_error'));
    secure.on('close', () => this.abort('client_closed'));
  }

  // ---- cancel ------------------------------------------------------------------

  private handleCancel(processId: number, secretKey: Buffer): void {
    const target = this.deps.cancels.lookup(processId, secretKey);
    // Like PostgreSQL, a CancelRequest gets no answer either way: just close.
    this.state = 'closed';
    clearTimeout(this.authTimer);
    endWith(this.stream);
    this.deps.onClose?.(this);
    if (target) target.cancelUpstreamQuery().catch(() => undefined);
  }

  // ---- endings -----------------------------------------------------------------

  private protocolViolation(err: unknown): void {
    if (err instanceof FrameError || err instanceof ProtocolError) {
      this.reject('protocol_violation', SqlState.PROTOCOL_VIOLATION, `invalid message from the client: ${err.message}`);
    } else {
      this.reject('internal_error', SqlState.INTERNAL_ERROR, `tokengate could not process the message: ${(err as Error).message}`);
    }
  }

  /** Refuse the connection: a FATAL ErrorResponse the agent can act on, and an audit record. */
  private reject(reason: string, code: string, message: string, extra: { role?: string; database?: string; detail?: string } = {}): void {
    if (this.isClosed()) return;
    const { detail, ...where } = extra;
    this.deps.audit.write({
      event: 'connection_rejected', sessionId: this.id, protocol: 'postgres', remote: this.remote, tls: this.tls,
      reason, message: detail ? `${message} (${detail})` : message, ...where, ...this.identityFields(),
    });
    endWith(this.stream, errorResponse({ severity: 'FATAL', code, message }));
    this.finish(reason, 0, 0, 0, false);
  }

  /** The client vanished or broke the transport: no message can reach it. */
  private abort(reason: string): void {
    if (this.isClosed()) return;
    if (this.state === 'relay' && this.relay) {
      this.relay.stop(reason);
      return;
    }
    if (this.conn) this.releaseUpstream(true);
    this.stream.destroy();
    this.finish(reason, 0, 0, 0, false);
  }

  private releaseUpstream(reusable: boolean): void {
    if (this.conn && this.pool) this.pool.release(this.conn, reusable);
    this.conn = undefined;
  }

  private finish(reason: string, bytesFromClient: number, bytesToClient: number, queries: number, upstreamReused: boolean): void {
    const wasRelaying = this.state === 'relay';
    this.state = 'closed';
    clearTimeout(this.authTimer);
    if (this.cancelKey) this.deps.cancels.revoke(this.cancelKey.processId);
    if (wasRelaying) {
      this.deps.audit.write({
        event: 'session_end', sessionId: this.id, protocol: 'postgres', remote: this.remote,
        durationMs: Date.now() - this.startedAt, bytesFromClient, bytesToClient, queries, reason, upstreamReused, ...this.identityFields(),
      });
    }
    this.deps.onClose?.(this);
  }

  private isClosed(): boolean {
    return this.state === 'closed';
  }

  private identityFields(): IdentityFields {
    return identityFields(this.identity);
  }
}

/**
 * ParameterStatus messages by (name, value): every greeting sends a dozen, nearly always the
 * same ones, and encoding them was a few percent of the gateway's CPU per login.
 */
const parameterStatusCache = new Map<string, Buffer>();
const MAX_CACHED_PARAMETER_STATUS = 1024;

function parameterStatusMessage(name: string, value: string): Buffer {
  const key = `${name}\0${value}`;
  let message = parameterStatusCache.get(key);
  if (!message) {
    message = parameterStatus(name, value);
    if (parameterStatusCache.size >= MAX_CACHED_PARAMETER_STATUS) parameterStatusCache.clear();
    parameterStatusCache.set(key, message);
  }
  return message;
}
