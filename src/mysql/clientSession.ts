import net from 'node:net';
import tls from 'node:tls';
import type { Refusal } from '../core/admission';
import { ClientSession, type LifecycleCodes, type SessionDeps } from '../core/clientSession';
import type { Pool } from '../core/pool';
import { MAX_ACCESS_TOKEN_BYTES } from '../identity/tokenSize';
import type { ClientPeer } from '../net/clientPeer';
import { PrefixedStream } from '../net/prefixedStream';
import { MAX_CLEAR_PASSWORD_BYTES, decodeClearPassword, encodeAuthSwitchRequest } from '../../protocols/mysql/auth';
import { encodeInitDb, encodeQuery } from '../../protocols/mysql/command';
import { CLIENT_PLUGIN_AUTH, CLIENT_SSL, ErrorCode, GATEWAY_CAPABILITIES, MYSQL_CLEAR_PASSWORD, MYSQL_NATIVE_PASSWORD, SERVER_STATUS_AUTOCOMMIT, UTF8MB4_GENERAL_CI, formatCapabilities, type ErrorCodeDef } from '../../protocols/mysql/constants';
import { MysqlDecodeError } from '../../protocols/mysql/errors';
import { encodePacket } from '../../protocols/mysql/framing';
import { HandshakeV10Template, SCRAMBLE_LENGTH, decodeHandshakeResponse41, decodeSslRequest, isSslRequest, type DecodedHandshakeResponse41 } from '../../protocols/mysql/handshake';
import { randomBytes } from '../core/random';
import { troubleLog } from '../throttledLog';
import { interceptCommand, type PolicyHost } from './commandPolicy';
import type { KillTarget, MysqlConnectionRegistry } from './connectionIds';
import { MysqlHandshakeReader, type HandshakePacket } from './handshakeReader';
import type { MysqlPoolRegistry } from './pool';
import { MysqlRelay } from './relay';
import { GATEWAY_ERROR, SERVER_SHUTDOWN, errPayload, okPayload, schemaChangedOk } from './replies';
import { routeLogin, type Granted } from './routing';
import type { MysqlServerConnection } from './serverConnection';

/** What a MySQL session needs beyond what every session does. */
export interface MysqlSessionDeps extends SessionDeps {
  pools: Pick<MysqlPoolRegistry, 'get'>;
  connections: MysqlConnectionRegistry;
  /** The version string to greet with (the upstream's, see MysqlServerVersion). */
  serverVersion: () => string;
}

/** Sub-states of the login, in order. */
type Login = 'greeted' | 'token' | 'connecting' | 'done';

/** Login packets: a HandshakeResponse41 with its bounded attributes, or the token. */
const MAX_LOGIN_PAYLOAD = MAX_CLEAR_PASSWORD_BYTES + 80 * 1024;

const CODES: LifecycleCodes<ErrorCodeDef> = {
  authTimeout: ErrorCode.BAD_HANDSHAKE,
  expired: ErrorCode.CONNECTION_KILLED,
  // MySQL 8.0.24+ sends ER_CLIENT_INTERACTION_TIMEOUT before closing a session past wait_timeout.
  idleTimeout: ErrorCode.CLIENT_INTERACTION_TIMEOUT,
  idleInTransactionTimeout: ErrorCode.CLIENT_INTERACTION_TIMEOUT,
  sessionDuration: ErrorCode.CONNECTION_KILLED,
  end: {
    shutdown: SERVER_SHUTDOWN,
    killed: ErrorCode.CONNECTION_KILLED,
    revoked: ErrorCode.CONNECTION_KILLED,
    grant_withdrawn: ErrorCode.CONNECTION_KILLED,
  },
  refusal: {
    token: ErrorCode.ACCESS_DENIED,
    revoked: ErrorCode.ACCESS_DENIED,
    unknown_database: ErrorCode.UNKNOWN_DATABASE,
    database_not_granted: ErrorCode.DB_ACCESS_DENIED,
    not_granted: ErrorCode.ACCESS_DENIED,
    client_limit: ErrorCode.TOO_MANY_CONNECTIONS,
    // As a server's max_user_connections answers.
    identity_limit: ErrorCode.TOO_MANY_USER_CONNECTIONS,
    limit: ErrorCode.TOO_MANY_CONNECTIONS,
    pool_exhausted: ErrorCode.TOO_MANY_CONNECTIONS,
    upstream_unavailable: GATEWAY_ERROR,
    upstream_login_refused: GATEWAY_ERROR,
  },
  proxyHeader: ErrorCode.BAD_HANDSHAKE,
};

type Opened = { pool: Pool<MysqlServerConnection>; conn: MysqlServerConnection } | { reason: string; error: ErrorCodeDef; message: string; detail?: string };

/**
 * One client connection on the MySQL listener: greeting (the upstream's version, a gateway
 * connection id), optional TLS, HandshakeResponse41, then always an AuthSwitchRequest to
 * mysql_clear_password to receive the token; grant decision, pooled upstream, OK, relay.
 * A client that names no database while several are granted starts without an upstream
 * and gets one at its first USE.
 */
export class MysqlClientSession extends ClientSession<MysqlServerConnection, ErrorCodeDef> implements KillTarget {
  readonly protocol = 'mysql';
  private login: Login = 'greeted';
  private reader = new MysqlHandshakeReader(MAX_LOGIN_PAYLOAD);
  private readonly greetingCapabilities: number;
  private connectionId = 0;
  /** The sequence id of the next packet the gateway sends during login. */
  private replySequence = 1;
  /** The sequence id the client's next login packet must carry. */
  private expectedSequence = 1;
  private response?: DecodedHandshakeResponse41;
  /** Capabilities negotiated with the client. */
  private capabilities = 0;
  private upstreamName?: string;
  private databaseChoices: string[] = [];

  constructor(socket: net.Socket, protected override readonly deps: MysqlSessionDeps, peer?: ClientPeer) {
    super(socket, deps, 'my-', CODES, peer);
    this.greetingCapabilities = deps.tlsContext() ? GATEWAY_CAPABILITIES : (GATEWAY_CAPABILITIES & ~CLIENT_SSL) >>> 0;
  }

  // ---- KillTarget ----------------------------------------------------------------

  get owner(): string | undefined {
    return this.identity?.sub;
  }

  get upstreamThreadId(): number | undefined {
    return this.conn?.threadId;
  }

  async killQuery(): Promise<void> {
    return this.cancelQuery();
  }

  killConnection(): void {
    this.end('killed', 'Connection was killed (KILL CONNECTION from another session of the same identity)');
  }

  async cancelQuery(): Promise<void> {
    const relay = this.relay as MysqlRelay | undefined;
    if (relay?.busy && this.conn) await this.conn.killQuery();
  }

  // ---- lifecycle -----------------------------------------------------------------

  /** Like a full MySQL server: an ERR in place of the greeting (sequence id 0). */
  protected override overClientLimit(r: Refusal): void {
    this.replySequence = 0;
    this.refuse(r, {});
  }

  /**
   * A trusted balancer's missing header is refused before the greeting: an ERR in its place
   * (sequence 0). An untrusted peer's header came after the greeting, where the client's next
   * packet (its HandshakeResponse, sequence 1) expects the answer with sequence 2.
   */
  protected override refusePeer(reason: string, message: string): void {
    this.replySequence = reason === 'proxy_header_missing' ? 0 : 2;
    super.refusePeer(reason, message);
  }

  protected begin(): void {
    this.connectionId = this.deps.connections.issue(this, this.id);
    const greeting = greetingTemplate(this.deps.serverVersion(), this.greetingCapabilities, this.greetingPlugin());
    this.socket.write(greeting.packet(this.connectionId, scramble()));
  }

  protected finalError(code: ErrorCodeDef, message: string): Buffer {
    return encodePacket(this.replySequence, errPayload(code, message));
  }

  protected authTimeoutMessage(seconds: number): string {
    return `tokengate did not receive a login and access token within ${seconds}s; connect again and send the token as the password without delay`;
  }

  protected released(): void {
    this.deps.connections.revoke(this.connectionId);
  }

  // ---- login ---------------------------------------------------------------------

  protected readonly onHandshakeData = (chunk: Buffer): void => {
    if (this.closed) return;
    this.reader.push(chunk);
    while (!this.closed && this.login !== 'done') {
      const announced = this.reader.peekLength();
      if (this.login === 'token' && announced !== undefined && announced > MAX_ACCESS_TOKEN_BYTES + 1) {
        this.refuseOversizedToken(announced - 1, this.requested()); // the token less its NUL, refused before it is read
        return;
      }
      let packet: HandshakePacket | undefined;
      try {
        packet = this.reader.next();
      } catch (err) {
        this.reject('protocol_violation', ErrorCode.BAD_HANDSHAKE, `invalid login packet: ${(err as Error).message}`);
        return;
      }
      if (!packet) return;
      if (packet.sequenceId !== this.expectedSequence) {
        this.reject('protocol_violation', ErrorCode.BAD_HANDSHAKE, `login packet with sequence id ${packet.sequenceId} where ${this.expectedSequence} was expected`);
        return;
      }
      this.replySequence = (packet.sequenceId + 1) & 0xff;
      if (this.login === 'greeted') {
        if (!this.onHandshakeResponse(packet)) return; // switched to TLS or refused
      } else if (this.login === 'token') {
        this.onToken(packet.payload);
      } else {
        this.reject('protocol_violation', ErrorCode.BAD_HANDSHAKE, 'received a command before the login finished; wait for the OK packet');
        return;
      }
    }
  };

  /** SSLRequest or HandshakeResponse41. Returns false when the reader must not be read further. */
  private onHandshakeResponse(packet: HandshakePacket): boolean {
    if (!this.tls && isSslRequest(packet.payload)) {
      if (!this.deps.tlsContext()) {
        this.reject('protocol_violation', ErrorCode.BAD_HANDSHAKE, 'this tokengate listener has no TLS certificate configured, so it cannot accept an SSL request; connect without TLS from loopback or ask the operator to configure tls.certFile');
        return false;
      }
      try {
        decodeSslRequest(packet.payload);
      } catch (err) {
        this.reject('protocol_violation', ErrorCode.BAD_HANDSHAKE, `invalid SSL request: ${(err as Error).message}`);
        return false;
      }
      this.expectedSequence = (packet.sequenceId + 1) & 0xff;
      this.upgradeToTls(this.reader.takeRemaining());
      return false;
    }
    let response: DecodedHandshakeResponse41;
    try {
      response = decodeHandshakeResponse41(packet.payload, this.greetingCapabilities);
    } catch (err) {
      // A token sent with the login (mysql_clear_password offered in the greeting) that is too large;
      // a length the packet cannot even hold is a malformed packet, not a token.
      if (err instanceof MysqlDecodeError && err.code === 'too_long' && err.what.endsWith('auth response') && err.length !== undefined &&
        err.length < packet.payload.length) {
        this.refuseOversizedToken(err.length);
        return false;
      }
      this.reject('protocol_violation', ErrorCode.BAD_HANDSHAKE, `invalid handshake response: ${(err as Error).message}`);
      return false;
    }
    this.response = response;
    this.capabilities = (response.capabilities & this.greetingCapabilities) >>> 0;
    if (!response.username) {
      this.reject('no_role', ErrorCode.ACCESS_DENIED, 'no user name in the login; set the user to the role you were granted (for example "reader")', this.requested());
      return false;
    }
    if (!(this.capabilities & CLIENT_PLUGIN_AUTH)) {
      this.reject('protocol_violation', ErrorCode.BAD_HANDSHAKE,
        'your client does not support authentication plugins (CLIENT_PLUGIN_AUTH); tokengate receives the token with mysql_clear_password, so use a MySQL 5.5+ / MariaDB client library', this.requested());
      return false;
    }
    if (!this.tls && !this.plaintextAllowed()) {
      this.reject('plaintext_refused', ErrorCode.ACCESS_DENIED,
        'tokengate accepts access tokens only over TLS from this address; enable TLS in your client (mariadb --ssl, mysql2 ssl: {...}, PyMySQL ssl={...})', this.requested());
      return false;
    }
    this.login = 'token';
    if (response.authPluginName === MYSQL_CLEAR_PASSWORD) {
      // The client took the greeting's offer and sent the token in clear already (libmariadb does).
      this.onToken(response.authResponse);
      return !this.closed;
    }
    // Ask for the password in clear: the token itself is what the gateway verifies.
    this.stream.write(encodePacket(this.replySequence, encodeAuthSwitchRequest(MYSQL_CLEAR_PASSWORD, Buffer.alloc(0))));
    this.expectedSequence = (this.replySequence + 1) & 0xff;
    return true;
  }

  /** The mysql_clear_password data: in the HandshakeResponse, or in its own packet after the AuthSwitchRequest. */
  private onToken(clearPassword: Buffer): void {
    if (this.reader.buffered > 0) {
      this.reject('protocol_violation', ErrorCode.BAD_HANDSHAKE, 'received data after the password before the login finished', this.requested());
      return;
    }
    if (clearPassword.length > MAX_ACCESS_TOKEN_BYTES + 1) {
      this.refuseOversizedToken(clearPassword.length - 1, this.requested());
      return;
    }
    let token: string;
    try {
      token = decodeClearPassword(clearPassword).trim();
    } catch (err) {
      this.reject('malformed', ErrorCode.ACCESS_DENIED, `the password is not a usable access token: ${(err as Error).message}`, this.requested());
      return;
    }
    if (token === '') {
      this.reject('no_token', ErrorCode.ACCESS_DENIED,
        'no access token: put your Okta access token where the password goes (MYSQL_PWD, -p"$TOKEN", or the driver\'s password option)', this.requested());
      return;
    }
    this.login = 'connecting';
    this.stream.pause();
    this.admit(token).catch((err: Error) => {
      this.reject('internal_error', GATEWAY_ERROR, `tokengate failed while opening the session: ${err.message}`, this.requested());
    });
  }

  private requested(): { role?: string; database?: string } {
    return { role: this.response?.username || undefined, database: this.response?.database || undefined };
  }

  /**
   * Where a token may travel in clear (loopback, or plaintext allowed for everyone), the
   * greeting offers mysql_clear_password: libmariadb clients (mariadb CLI, MySQLdb, sysbench)
   * and mysql2 over TLS then send the token in their HandshakeResponse, one round trip fewer.
   * Elsewhere a client could send it before choosing TLS, so the greeting names
   * mysql_native_password (the client's answer is a hash of a random scramble) and the
   * token is asked for with an AuthSwitchRequest once the connection is known to be secure.
   */
  private greetingPlugin(): string {
    return this.plaintextAllowed() ? MYSQL_CLEAR_PASSWORD : MYSQL_NATIVE_PASSWORD;
  }

  /** Verify the token, decide the grant, get an upstream connection (unless none is chosen yet), say OK. */
  private async admit(token: string): Promise<void> {
    const role = this.response!.username;
    const where = this.requested();
    const identity = await this.identify(token, where);
    if (!identity || this.closed) return;
    const route = routeLogin(this.deps.config(), identity, role, this.response!.database);
    if (!route.ok) {
      this.reject(route.reason, route.error, route.message, where);
      return;
    }
    if ('deferred' in route) {
      if (!(await this.takeLease(undefined, where))) return;
      this.databaseChoices = route.choices;
      this.greetAndRelay(undefined);
      return;
    }
    if (!(await this.takeLease(route.grant.name, where))) return;
    const opened = await this.openUpstream(route);
    if (this.closed) {
      if ('conn' in opened) opened.pool.release(opened.conn, true);
      return;
    }
    if (!('conn' in opened)) {
      this.reject(opened.reason, opened.error, opened.message, { ...where, detail: opened.detail });
      return;
    }
    this.pool = opened.pool;
    this.conn = opened.conn;
    this.upstreamName = route.upstream.name;
    this.greetAndRelay(route);
  }

  /** A pooled upstream connection whose packet format matches the client's. */
  private async openUpstream(g: Granted): Promise<Opened> {
    const charset = this.response!.characterSet || UTF8MB4_GENERAL_CI;
    const acquired = await this.deps.admission.acquire(g.upstream.name, g.role.name,
      (upstream, role) => this.deps.pools.get(upstream, role, g.database, this.capabilities, charset));
    if (!acquired.ok) return { reason: acquired.reason, error: CODES.refusal[acquired.kind], message: acquired.message, detail: acquired.detail };
    const { pool, conn } = acquired.value;
    const want = formatCapabilities(this.capabilities);
    const have = formatCapabilities(conn.capabilities);
    if (want !== have) {
      pool.release(conn, true);
      return {
        reason: 'capability_mismatch', error: ErrorCode.BAD_HANDSHAKE,
        message: `upstream "${g.upstream.name}" (${conn.serverVersion}) does not support protocol capabilities your client asked for (0x${((want & ~have) >>> 0).toString(16)}); use a client option that turns them off, or a newer server`,
      };
    }
    const timeoutMs = this.statementTimeoutMs(g.grant.name);
    if (timeoutMs !== undefined) {
      // The pool's reset (COM_RESET_CONNECTION) puts session variables back on release.
      const sql = statementTimeoutSql(conn.serverVersion, timeoutMs);
      let error: string | undefined;
      try {
        const r = await conn.command(encodeQuery(sql), SET_TIMEOUT_MS);
        if (r.error) error = `ERROR ${r.error.code}: ${r.error.message}`;
      } catch (err) {
        error = (err as Error).message;
      }
      if (error !== undefined) {
        pool.release(conn, false);
        troubleLog.report('warn', `upstream:${g.upstream.name}:statement-timeout:${error}`,
          `upstream "${g.upstream.name}" (${conn.serverVersion}) refused the statement timeout of grant "${g.grant.name}" (${sql}): ${error}`);
        return {
          reason: 'upstream_unavailable', error: GATEWAY_ERROR,
          message: `upstream "${g.upstream.name}" did not accept the statement timeout of grant "${g.grant.name}"; reconnect, and if it persists tell a DBA`,
          detail: `${sql}: ${error}`,
        };
      }
    }
    return { pool, conn };
  }

  private greetAndRelay(route: Granted | undefined): void {
    const response = this.response!;
    this.accepted(
      { grant: route?.grant.name ?? '', upstream: route?.upstream.name ?? '', role: response.username, database: route?.alias ?? '' },
      { upstreamDatabase: route?.database ?? '', applicationName: response.connectAttribute('program_name') ?? response.connectAttribute('_client_name') },
    );
    this.login = 'done';
    this.stream.removeListener('data', this.onHandshakeData);
    const statusFlags = this.conn?.statusFlags ?? SERVER_STATUS_AUTOCOMMIT;
    this.stream.write(encodePacket(this.replySequence, okPayload(statusFlags, this.capabilities)));
    const policy = this.policyHost();
    const relay = new MysqlRelay({
      client: this.stream,
      audit: this.deps.audit,
      sessionId: this.id,
      identity: this.identityFields(),
      clientCapabilities: this.capabilities,
      statusFlags,
      intercept: (cmd) => interceptCommand(policy, cmd),
      queryStats: this.queryStats(),
      onEnd: this.relayEnded,
    });
    if (this.conn) relay.setUpstream(this.conn);
    this.startRelay(relay);
    this.stream.resume();
  }

  private policyHost(): PolicyHost {
    return {
      config: this.deps.config,
      identity: this.identity!,
      role: this.response!.username,
      connections: this.deps.connections,
      self: this,
      clientCapabilities: this.capabilities,
      currentUpstream: () => this.upstreamName,
      databaseChoices: () => this.databaseChoices,
      statusFlags: () => (this.relay as MysqlRelay | undefined)?.statusFlags ?? SERVER_STATUS_AUTOCOMMIT,
      useDatabase: (g) => this.useDatabase(g),
    };
  }

  /** USE of a granted alias: the first one picks the upstream; later ones switch the database on it. */
  private async useDatabase(g: Granted): Promise<Buffer> {
    const relay = this.relay as MysqlRelay;
    if (!this.conn) {
      const full = await this.takeGrantLease(g.grant.name);
      if (full) return errPayload(CODES.refusal[full.kind], full.message);
      const opened = await this.openUpstream(g);
      if (!('conn' in opened)) {
        this.releaseGrantLease(); // the cause of an upstream failure is on the operational log (Admission)
        return errPayload(opened.error, opened.message);
      }
      if (relay.isEnded) {
        opened.pool.release(opened.conn, true);
        throw new Error('the session ended');
      }
      this.pool = opened.pool;
      this.conn = opened.conn;
      this.upstreamName = g.upstream.name;
      this.access = { ...this.access!, grant: g.grant.name, upstream: g.upstream.name, database: g.alias };
      relay.setUpstream(opened.conn);
      this.grantChosen(g.grant.name);
      return schemaChangedOk(g.alias, relay.statusFlags, this.capabilities);
    }
    const r = await relay.runInternal(encodeInitDb(g.database));
    if (r.error) {
      return errPayload({ code: r.error.code, sqlState: r.error.sqlState ?? 'HY000' },
        `database "${g.alias}" is granted to you, but the upstream refused it (${r.error.message}); tell a DBA`);
    }
    this.access = { ...this.access!, grant: g.grant.name, database: g.alias };
    return schemaChangedOk(g.alias, relay.statusFlags, this.capabilities);
  }

  // ---- TLS ---------------------------------------------------------------------

  /** The TLS handshake follows the SSLRequest at once; bytes already read are its start. */
  private upgradeToTls(leftover: Buffer): void {
    this.socket.removeListener('data', this.onHandshakeData);
    const base = leftover.length > 0 ? (new PrefixedStream(this.socket, leftover) as unknown as net.Socket) : this.socket;
    const secure = new tls.TLSSocket(base, { isServer: true, secureContext: this.deps.tlsContext() });
    this.reader = new MysqlHandshakeReader(MAX_LOGIN_PAYLOAD);
    this.useTls(secure);
  }

  // ---- endings -----------------------------------------------------------------

  protected override abortedInHandshake(): void {
    if (this.login !== 'token') return;
    // Most often mysql2 without enableCleartextPlugin: it drops the connection at the AuthSwitchRequest.
    this.deps.audit.write({
      event: 'connection_rejected', sessionId: this.id, protocol: 'mysql', remote: this.remote, tls: this.tls,
      reason: 'client_closed_during_auth', ...this.requested(),
      message: 'the client closed the connection when asked for the token with mysql_clear_password; mysql2 needs enableCleartextPlugin: true, the Oracle mysql client --enable-cleartext-plugin',
    });
  }
}

/** Bounds the SET of a grant's statement timeout on a fresh session. */
const SET_TIMEOUT_MS = 5_000;

/**
 * A grant's statementTimeout for the session: MariaDB's max_statement_time (seconds, any
 * statement), MySQL's max_execution_time (milliseconds, read-only SELECTs only).
 */
export function statementTimeoutSql(serverVersion: string, timeoutMs: number): string {
  return /mariadb/i.test(serverVersion)
    ? `SET SESSION max_statement_time = ${timeoutMs / 1000}`
    : `SET SESSION max_execution_time = ${Math.max(1, Math.round(timeoutMs))}`;
}

/** Greeting templates, one per (server version, capabilities, plugin) in use: a listener needs a handful. */
const greetingTemplates: HandshakeV10Template[] = [];
const GREETING_TEMPLATE_LIMIT = 8;

function greetingTemplate(serverVersion: string, capabilities: number, authPluginName: string): HandshakeV10Template {
  for (const t of greetingTemplates) {
    const c = t.constants;
    if (c.serverVersion === serverVersion && c.capabilities === capabilities && c.authPluginName === authPluginName) return t;
  }
  const t = new HandshakeV10Template({ serverVersion, capabilities, characterSet: UTF8MB4_GENERAL_CI, statusFlags: SERVER_STATUS_AUTOCOMMIT, authPluginName });
  if (greetingTemplates.unshift(t) > GREETING_TEMPLATE_LIMIT) greetingTemplates.pop();
  return t;
}

/** A 20-byte scramble of printable characters (some clients treat it as a C string). */
function scramble(): Buffer {
  const out = randomBytes(SCRAMBLE_LENGTH);
  for (let i = 0; i < out.length; i++) out[i] = 0x21 + (out[i] % 94);
  return out;
}
