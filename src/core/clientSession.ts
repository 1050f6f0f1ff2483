import type net from 'node:net';
import type tls from 'node:tls';
import type { AuditLog } from '../audit/auditLog';
import { identityFields, type IdentityFields } from '../audit/events';
import type { Config, Protocol } from '../config/schema';
import { tokenTooLargeMessage } from '../identity/tokenSize';
import type { Identity } from '../identity/types';
import { formatRemote, isLoopbackAddress } from '../net/address';
import { endWith } from '../net/endWith';
import type { Admission, Refusal, RefusalKind } from './admission';
import type { Clock, Timer } from './clock';
import type { Pool, UpstreamConnection } from './pool';
import { randomId } from './random';
import type { Notice, Relay, RelayEnd } from './relay';
import type { EndReason, LiveSession, SessionInfo, SessionRegistry } from './sessionRegistry';
import type { Lease } from './state/connectionLeases';

/** What every client session needs from the rest of the gateway. */
export interface SessionDeps {
  /** The current config: read where a value is used, so a reload reaches new sessions at once. */
  config: () => Config;
  admission: Admission;
  registry: SessionRegistry;
  audit: AuditLog;
  clock: Clock;
  /** The certificate for client TLS, or undefined when none is configured. */
  tlsContext: () => tls.SecureContext | undefined;
}

/** A protocol's error codes (a SQLSTATE, a MySQL error) for the endings the lifecycle makes. */
export interface LifecycleCodes<Code> {
  authTimeout: Code;
  /** The session's token expired. */
  expired: Code;
  /** Ended from outside: shutdown, an operator's kill or revocation, a withdrawn grant. */
  end: Record<EndReason, Code>;
  /** Admission refusals by kind. */
  refusal: Record<RefusalKind, Code>;
}

/** What the client asked for and was granted, for audit records and the session list. */
export interface SessionAccess {
  grant: string;
  upstream: string;
  role: string;
  /** The database alias the client named. */
  database: string;
}

/** Where the client's request is, for refusals: the role and database it named, and a detail for the audit only. */
export interface RefusalContext {
  role?: string;
  database?: string;
  detail?: string;
}

/** How long an ending session may take to reach a message boundary before it is cut. */
const DRAIN_MS = 10_000;

type Phase = 'handshake' | 'relay' | 'closed';

/**
 * The lifecycle every client session shares, whatever its protocol: registration, the
 * handshake deadline, refusal and abort, the accepted-session audit record, the relay's end,
 * token expiry and the drain to a message boundary, operator ends, release of the upstream
 * connection and the session_end record. A protocol supplies its handshake, its relay, its
 * error encoding and its codes.
 */
export abstract class ClientSession<Conn extends UpstreamConnection, Code> implements LiveSession {
  abstract readonly protocol: Protocol;
  readonly id: string;
  protected stream: net.Socket | tls.TLSSocket;
  protected tls = false;
  protected readonly remote: string;
  protected readonly loopback: boolean;
  protected readonly startedAt: number;
  protected identity?: Identity;
  protected access?: SessionAccess;
  protected conn?: Conn;
  protected pool?: Pool<Conn>;
  protected relay?: Relay<Code>;
  #phase: Phase = 'handshake';
  #lease?: Lease;
  #authTimer?: Timer;
  #expiryTimer?: Timer;
  #drainTimer?: Timer;
  /** Who ended the session from outside, for its session_end record. */
  #endedBy?: string;

  constructor(
    protected readonly socket: net.Socket,
    protected readonly deps: SessionDeps,
    idPrefix: string,
    private readonly codes: LifecycleCodes<Code>,
  ) {
    this.id = randomId(idPrefix, 6);
    this.stream = socket;
    this.remote = formatRemote(socket);
    this.loopback = isLoopbackAddress(socket.remoteAddress);
    this.startedAt = deps.clock.now();
  }

  // ---- what a protocol supplies -------------------------------------------------------

  /** Handles handshake bytes from the client (plaintext or TLS). */
  protected abstract readonly onHandshakeData: (chunk: Buffer) => void;
  /** The last bytes of a refused connection: the protocol's error message. */
  protected abstract finalError(code: Code, message: string): Buffer;
  /** The agent-facing message when the handshake did not finish in time. */
  protected abstract authTimeoutMessage(seconds: number): string;
  /** Called once when the session starts, after the socket handlers are in place (e.g. the MySQL greeting). */
  protected abstract begin(): void;
  /** Called once when the session is over: give back what the protocol issued (cancel key, connection id). */
  protected abstract released(): void;
  abstract cancelQuery(): Promise<void>;

  // ---- start and handshake --------------------------------------------------------------

  start(): void {
    this.socket.setNoDelay(true);
    this.deps.registry.add(this);
    this.socket.on('data', this.onHandshakeData);
    this.socket.on('error', () => this.abort('client_error'));
    this.socket.on('close', () => this.abort('client_closed'));
    const timeoutMs = this.deps.config().session.authTimeoutMs;
    this.#authTimer = this.deps.clock.setTimeout(() => {
      this.reject('auth_timeout', this.codes.authTimeout, this.authTimeoutMessage(timeoutMs / 1000));
    }, timeoutMs);
    this.begin();
  }

  /** Whether a token may arrive without TLS from this client. */
  protected plaintextAllowed(): boolean {
    const t = this.deps.config().tls;
    return t.allowPlaintextFromAnywhere || (this.loopback && t.allowPlaintextFromLoopback);
  }

  /** Switches the handshake to a TLS socket layered over the client's. */
  protected useTls(secure: tls.TLSSocket): void {
    this.tls = true;
    this.stream = secure;
    secure.on('data', this.onHandshakeData);
    secure.on('error', () => this.abort('tls_error'));
    secure.on('close', () => this.abort('client_closed'));
  }

  protected get closed(): boolean {
    return this.#phase === 'closed';
  }

  // ---- admission ------------------------------------------------------------------------

  /** The token's identity (also kept on the session), or undefined once the session was refused. */
  protected async identify(token: string, where: RefusalContext): Promise<Identity | undefined> {
    const r = await this.deps.admission.identify(token);
    if (!r.ok) {
      this.refuse(r, where);
      return undefined;
    }
    this.identity = r.value;
    return r.value;
  }

  /** Counts the session under its identity and grant; false once the session was refused. */
  protected takeLease(grant: string | undefined, where: RefusalContext): boolean {
    const r = this.deps.admission.lease(this.identity!, grant);
    if (!r.ok) {
      this.refuse(r, where);
      return false;
    }
    this.#lease?.release();
    this.#lease = r.value;
    return true;
  }

  /** A password larger than any access token: refused as soon as its size is known, before it is parsed or verified. */
  protected refuseOversizedToken(bytes: number, where: RefusalContext = {}): void {
    this.reject('token_too_large', this.codes.refusal.token, tokenTooLargeMessage(bytes), where);
  }

  protected refuse(r: Refusal, where: RefusalContext): void {
    this.reject(r.reason, this.codes.refusal[r.kind], r.message, { ...where, detail: r.detail ?? where.detail });
  }

  /** Refuse the connection: the protocol's error the agent can act on, and an audit record. */
  protected reject(reason: string, code: Code, message: string, extra: RefusalContext = {}): void {
    if (this.closed) return;
    const { detail, ...where } = extra;
    this.deps.audit.write({
      event: 'connection_rejected', sessionId: this.id, protocol: this.protocol, remote: this.remote, tls: this.tls,
      reason, message: detail ? `${message} (${detail})` : message, ...where, ...this.identityFields(),
    });
    endWith(this.stream, this.finalError(code, message));
    this.finish(reason);
  }

  /** The client vanished or broke the transport: no message can reach it. */
  protected abort(reason: string): void {
    if (this.closed) return;
    if (this.relay) {
      this.relay.stop(reason);
      return;
    }
    this.abortedInHandshake(reason);
    this.releaseUpstream(true);
    this.stream.destroy();
    this.finish(reason);
  }

  /** Hook for an audit record of a client that left during the handshake. */
  protected abortedInHandshake(_reason: string): void {}

  /** Ends the session without a word, as a server does after a CancelRequest. */
  protected closeQuietly(reason: string): void {
    if (this.closed) return;
    endWith(this.stream);
    this.finish(reason, undefined, false);
  }

  // ---- the relay ----------------------------------------------------------------------------

  /** The login succeeded: audit it; the relay follows (startRelay). */
  protected accepted(access: SessionAccess, details: { upstreamDatabase: string; applicationName?: string }): void {
    this.deps.clock.clearTimeout(this.#authTimer);
    this.access = access;
    this.deps.audit.write({
      event: 'connection_accepted', sessionId: this.id, protocol: this.protocol, remote: this.remote, tls: this.tls,
      grant: access.grant, upstream: access.upstream, role: access.role, database: access.database,
      upstreamDatabase: details.upstreamDatabase, applicationName: details.applicationName, ...this.identityFields(),
    });
    this.#phase = 'relay';
  }

  /** Runs the relay until it ends; the token's expiry ends it at a message boundary. */
  protected startRelay(relay: Relay<Code>): void {
    this.relay = relay;
    relay.start();
    const expiresAt = this.identity!.expiresAt * 1000 + this.deps.config().session.expiryGraceMs;
    this.#expiryTimer = this.deps.clock.setTimeout(() => this.endAtBoundary('token_expired', this.expiryNotice()), expiresAt - this.deps.clock.now());
  }

  /** For the relay's onEnd. */
  protected readonly relayEnded = (end: RelayEnd): void => {
    this.releaseUpstream(end.upstreamReusable);
    this.finish(end.reason, end, end.upstreamReusable);
  };

  /**
   * Ends the session once nothing is outstanding: no new statements are taken, a running one
   * is interrupted, and after DRAIN_MS the session is cut regardless.
   */
  protected endAtBoundary(reason: string, notice: Notice<Code>): void {
    const relay = this.relay;
    if (!relay || this.closed) return;
    relay.hold(() => relay.stop(reason, notice));
    if (relay.atRest()) {
      relay.stop(reason, notice);
      return;
    }
    relay.interrupt();
    this.#drainTimer = this.deps.clock.setTimeout(() => relay.stop(`${reason}_forced`, notice), DRAIN_MS);
  }

  private expiryNotice(): Notice<Code> {
    const at = this.identityFields().tokenExpiresAt ?? 'now';
    return { code: this.codes.expired, message: `your access token expired (at ${at}) and tokengate ended this session; fetch a fresh token and reconnect` };
  }

  // ---- ending from outside ----------------------------------------------------------------

  end(reason: EndReason, message: string, by?: string): void {
    if (this.closed) return;
    this.#endedBy ??= by;
    const code = this.codes.end[reason];
    if (!this.relay) {
      this.reject(reason, code, message);
      return;
    }
    // A shutdown closes the upstream connections anyway; anything else stops the statement first.
    if (reason !== 'shutdown' && !this.relay.atRest()) this.relay.interrupt();
    this.relay.stop(reason, { code, message });
  }

  // ---- the end ------------------------------------------------------------------------------

  protected releaseUpstream(reusable: boolean): void {
    if (this.conn && this.pool) this.pool.release(this.conn, reusable);
    this.conn = undefined;
  }

  private finish(reason: string, end?: RelayEnd, upstreamReused = false): void {
    const wasRelaying = this.#phase === 'relay';
    this.#phase = 'closed';
    const { clock } = this.deps;
    clock.clearTimeout(this.#authTimer);
    clock.clearTimeout(this.#expiryTimer);
    clock.clearTimeout(this.#drainTimer);
    this.#lease?.release();
    this.released();
    if (wasRelaying) {
      this.deps.audit.write({
        event: 'session_end', sessionId: this.id, protocol: this.protocol, remote: this.remote,
        durationMs: clock.now() - this.startedAt, bytesFromClient: end?.bytesFromClient ?? 0, bytesToClient: end?.bytesToClient ?? 0,
        queries: end?.queries ?? 0, reason, upstreamReused, endedBy: this.#endedBy, ...this.identityFields(),
      });
    }
    this.deps.registry.remove(this, reason);
  }

  protected identityFields(): Readonly<IdentityFields> {
    return identityFields(this.identity);
  }

  info(): SessionInfo {
    const id = this.identity;
    const relay = this.relay;
    return {
      id: this.id,
      protocol: this.protocol,
      sub: id?.sub,
      cid: id?.clientId,
      jti: id?.jti,
      groups: id?.groups,
      tokenExpiresAt: id ? id.expiresAt * 1000 : undefined,
      tokenIssuedAt: id?.issuedAt !== undefined ? id.issuedAt * 1000 : undefined,
      grant: this.access?.grant,
      role: this.access?.role,
      database: this.access?.database,
      upstream: this.access?.upstream,
      remote: this.remote,
      startedAt: this.startedAt,
      state: relay && !this.closed ? relay.state : 'handshake',
      queryStartedAt: relay?.busySince,
      queries: relay?.queries ?? 0,
      bytesFromClient: relay?.bytesFromClient ?? 0,
      bytesToClient: relay?.bytesToClient ?? 0,
    };
  }
}
