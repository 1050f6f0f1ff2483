import type net from 'node:net';
import type tls from 'node:tls';
import type { AuditLog } from '../audit/auditLog';
import { identityFields, type IdentityFields } from '../audit/events';
import type { Config, Protocol } from '../config/schema';
import { tokenTooLargeMessage } from '../identity/tokenSize';
import type { Identity } from '../identity/types';
import { formatAddress, isLoopbackAddress } from '../net/address';
import type { ClientPeer } from '../net/clientPeer';
import { startsLikeProxyHeader } from '../net/proxyProtocol';
import { endWith } from '../net/endWith';
import { withdrawal, withdrawnMessage } from './accessReview';
import type { Admission, Admitted, Refusal, RefusalKind } from './admission';
import type { Clock, Timer } from './clock';
import { IdleWatch } from './idleWatch';
import { boundedCancel, idleInTransactionMessage, idleMessage, sessionDurationMessage } from './sessionLimits';
import type { Pool, UpstreamConnection } from './pool';
import { randomId } from './random';
import type { Notice, Relay, RelayEnd } from './relay';
import type { AdmittedAs, SessionAccess, EndReason, LiveSession, SessionInfo, SessionRegistry } from './sessionRegistry';
import type { Lease } from './state/connectionLeases';
import type { QueryStats } from '../metrics/queryStats';
import type { SessionMetrics } from '../metrics/metrics';

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
  /** Present when metrics are collected (listen.admin is set). */
  metrics?: SessionMetrics;
}

/** A protocol's error codes (a SQLSTATE, a MySQL error) for the endings the lifecycle makes. */
export interface LifecycleCodes<Code> {
  authTimeout: Code;
  /** The session's token expired. */
  expired: Code;
  /** session.idleTimeout: the client sent nothing for too long outside a transaction. */
  idleTimeout: Code;
  /** session.idleInTransactionTimeout: the same inside a transaction. */
  idleInTransactionTimeout: Code;
  /** The grant's maxSessionDuration passed. */
  sessionDuration: Code;
  /** Ended from outside: shutdown, an operator's kill or revocation, a withdrawn grant. */
  end: Record<EndReason, Code>;
  /** Admission refusals by kind. */
  refusal: Record<RefusalKind, Code>;
  /** listen.proxyProtocol: a trusted balancer sent no usable header, or an untrusted peer sent one. */
  proxyHeader: Code;
}

export type { SessionAccess } from './sessionRegistry';

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
  /** The client's "host:port": the socket's peer, or the client a trusted load balancer's PROXY header named. */
  protected readonly remote: string;
  /** Whether the client (not a load balancer in front of it) is on this machine. */
  protected readonly loopback: boolean;
  protected readonly startedAt: number;
  protected identity?: Identity;
  protected access?: SessionAccess;
  protected conn?: Conn;
  protected pool?: Pool<Conn>;
  protected relay?: Relay<Code>;
  #phase: Phase = 'handshake';
  #lease?: Lease;
  #clientLease?: Lease;
  #grantLease?: Lease;
  #idleWatch?: IdleWatch;
  #durationTimer?: Timer;
  #authTimer?: Timer;
  #expiryTimer?: Timer;
  #drainTimer?: Timer;
  /** Who ended the session from outside, for its session_end record. */
  #endedBy?: string;
  /** The config in force when admission began: a reload before the relay starts re-decides the access. */
  #admittedUnder?: Config;

  constructor(
    protected readonly socket: net.Socket,
    protected readonly deps: SessionDeps,
    idPrefix: string,
    private readonly codes: LifecycleCodes<Code>,
    private readonly peer: ClientPeer = { address: socket.remoteAddress ?? 'unknown', port: socket.remotePort ?? 0, refuseProxyHeader: false },
  ) {
    this.id = randomId(idPrefix, 6);
    this.stream = socket;
    this.remote = formatAddress(peer.address, peer.port);
    this.loopback = isLoopbackAddress(peer.address);
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
    this.socket.on('data', this.peer.refuseProxyHeader ? this.screenFirstChunk : this.onHandshakeData);
    this.socket.on('error', () => this.abort('client_error'));
    this.socket.on('close', () => this.abort('client_closed'));
    if (this.peer.refusal !== undefined) {
      this.refusePeer('proxy_header_missing', `tokengate expects a PROXY protocol header from ${this.peer.via} (it is in listen.proxyProtocol.trusted): ${this.peer.refusal}; ` +
        'enable send-proxy or send-proxy-v2 on the load balancer, or take its address out of listen.proxyProtocol.trusted');
      return;
    }
    const timeoutMs = this.deps.config().session.authTimeoutMs;
    this.#authTimer = this.deps.clock.setTimeout(() => {
      this.reject('auth_timeout', this.codes.authTimeout, this.authTimeoutMessage(timeoutMs / 1000));
    }, timeoutMs);
    const admitted = this.deps.admission.admitClient();
    if (!(admitted instanceof Promise)) {
      this.clientAdmitted(admitted);
      return;
    }
    // A shared count (limits.maxClientConnections across instances): the client's bytes wait for it.
    this.socket.pause();
    admitted.then((r) => {
      if (this.closed) {
        if (r.ok) r.value.release();
        return;
      }
      this.clientAdmitted(r);
      if (!this.closed) this.socket.resume();
    }, (err: Error) => this.reject('internal_error', this.codes.refusal.upstream_unavailable, `tokengate could not admit the connection: ${err.message}`));
  }

  private clientAdmitted(r: Admitted<Lease>): void {
    if (r.ok) this.#clientLease = r.value;
    else {
      this.overClientLimit(r);
      if (this.closed) return;
    }
    this.begin();
  }

  /** Refused for its PROXY header (listen.proxyProtocol): missing from a trusted balancer, or sent by an untrusted peer. */
  protected refusePeer(reason: string, message: string): void {
    this.reject(reason, this.codes.proxyHeader, message);
  }

  /** A peer that is not a trusted load balancer may not say who the client is: a PROXY header from it is refused. */
  private readonly screenFirstChunk = (chunk: Buffer): void => {
    this.socket.removeListener('data', this.screenFirstChunk);
    if (startsLikeProxyHeader(chunk)) {
      this.refusePeer('proxy_header_untrusted', `tokengate accepts PROXY protocol headers only from the load balancers in listen.proxyProtocol.trusted, and ${this.remote} is not one; ` +
        'connect directly, or ask the operator to add the load balancer\'s address there');
      return;
    }
    this.socket.on('data', this.onHandshakeData);
    this.onHandshakeData(chunk);
  };

  /**
   * The gateway has limits.maxClientConnections clients already. The default refuses at once;
   * a protocol whose clients expect the refusal later (PostgreSQL answers after the startup
   * packet) keeps `overLimit` and calls refuse() then. The connection counts meanwhile.
   */
  protected overClientLimit(r: Refusal): void {
    this.refuse(r, {});
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
    this.#admittedUnder = this.deps.config();
    const r = await this.deps.admission.identify(token);
    if (!r.ok) {
      this.refuse(r, where);
      return undefined;
    }
    this.identity = r.value;
    return r.value;
  }

  /** Counts the session under its identity and grant; false once the session was refused. */
  protected async takeLease(grant: string | undefined, where: RefusalContext): Promise<boolean> {
    const r = await this.deps.admission.lease(this.identity!, grant);
    if (!r.ok) {
      this.refuse(r, where);
      return false;
    }
    if (this.closed) {
      r.value.release();
      return false;
    }
    this.#lease?.release();
    this.#lease = r.value;
    return true;
  }

  /** Counts the session under a grant it chose after login (a MySQL USE); the refusal when the grant is full. */
  protected async takeGrantLease(grant: string): Promise<Refusal | undefined> {
    const r = await this.deps.admission.leaseGrant(grant);
    if (!r.ok) return r;
    if (this.closed) {
      r.value.release();
      return undefined;
    }
    this.#grantLease?.release();
    this.#grantLease = r.value;
    return undefined;
  }

  /** Gives back the grant lease of takeGrantLease (the USE that took it failed). */
  protected releaseGrantLease(): void {
    this.#grantLease?.release();
    this.#grantLease = undefined;
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
      event: 'connection_rejected', sessionId: this.id, protocol: this.protocol, remote: this.remote, via: this.peer.via, tls: this.tls,
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
      event: 'connection_accepted', sessionId: this.id, protocol: this.protocol, remote: this.remote, via: this.peer.via, tls: this.tls,
      grant: access.grant, upstream: access.upstream, role: access.role, database: access.database,
      upstreamDatabase: details.upstreamDatabase, applicationName: details.applicationName, ...this.identityFields(),
    });
    this.#phase = 'relay';
  }

  /** Where the relay counts this session's statements (after accepted()); undefined without metrics. */
  protected queryStats(): QueryStats | undefined {
    return this.deps.metrics?.queryStats(this.protocol, this.access!.grant);
  }

  /** Runs the relay until it ends; the token's expiry ends it at a message boundary. */
  protected startRelay(relay: Relay<Code>): void {
    this.relay = relay;
    relay.start();
    const { session } = this.deps.config();
    const expiresAt = this.identity!.expiresAt * 1000 + session.expiryGraceMs;
    this.#expiryTimer = this.deps.clock.setTimeout(() => this.endAtBoundary('token_expired', this.expiryNotice()), expiresAt - this.deps.clock.now());
    this.#idleWatch = new IdleWatch(this.deps.clock, relay, { idleMs: session.idleTimeoutMs, idleInTransactionMs: session.idleInTransactionTimeoutMs }, this.idleEnded);
    this.#idleWatch.start();
    if (this.access?.grant) this.grantChosen(this.access.grant);
    // A reload while this session was being admitted: the review of live sessions did not see it.
    const current = this.deps.config();
    if (this.#admittedUnder !== current && this.access) {
      const why = withdrawal(current, { identity: this.identity!, access: this.access }, this.protocol);
      if (why !== undefined) this.end('grant_withdrawn', withdrawnMessage(why));
    }
  }

  /**
   * The session's grant is known (at login, or at a MySQL session's first USE): its
   * maxSessionDuration starts to count from the session's start.
   */
  protected grantChosen(name: string): void {
    const grant = this.deps.config().grants.find((g) => g.name === name);
    const maxMs = grant?.maxSessionDurationMs;
    if (maxMs === undefined || this.#durationTimer) return;
    this.#durationTimer = this.deps.clock.setTimeout(
      () => this.endAtBoundary('max_session_duration', { code: this.codes.sessionDuration, message: sessionDurationMessage(name, maxMs) }),
      this.startedAt + maxMs - this.deps.clock.now());
  }

  /** The grant's statementTimeoutMs, for the protocol to set upstream for this session. */
  protected statementTimeoutMs(grant: string): number | undefined {
    return this.deps.config().grants.find((g) => g.name === grant)?.statementTimeoutMs;
  }

  private readonly idleEnded = (state: 'idle' | 'transaction', limitMs: number): void => {
    const relay = this.relay;
    if (!relay || this.closed) return;
    if (state === 'idle') relay.stop('idle_timeout', { code: this.codes.idleTimeout, message: idleMessage(limitMs) });
    else relay.stop('idle_in_transaction_timeout', { code: this.codes.idleInTransactionTimeout, message: idleInTransactionMessage(limitMs) });
  };

  /** For the relay's onEnd. */
  protected readonly relayEnded = (end: RelayEnd): void => {
    this.#idleWatch?.stop();
    const cancelling = this.cancelAbandoned(end);
    if (!cancelling) {
      this.releaseUpstream(end.upstreamReusable);
      this.finish(end.reason, end, end.upstreamReusable);
      return;
    }
    // The session is over for the client; its upstream connection and its place in the registry
    // are kept until the statement it left running is cancelled (a shutdown waits for that).
    cancelling.then(() => {
      this.releaseUpstream(false);
      this.finish(end.reason, end, false);
    });
  };

  /**
   * A session that ends with a statement still running upstream (shutdown, kill, revocation, a
   * withdrawn grant, a limit, a client that vanished) cancels it: closing the upstream
   * connection alone leaves it running on the server. Resolves when the server took the cancel,
   * or after CANCEL_WAIT_MS.
   */
  private cancelAbandoned(end: RelayEnd): Promise<void> | undefined {
    const relay = this.relay;
    if (end.upstreamReusable || !this.conn || !relay || relay.atRest() || end.reason.startsWith('upstream')) return undefined;
    return boundedCancel(this.deps.clock, () => this.cancelQuery());
  }

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
    // A statement still running is cancelled as the relay ends (relayEnded).
    this.relay.stop(reason, { code, message });
  }

  /** Ends the session now if it is idle outside a transaction (or still in its handshake); false when it is busy. */
  endIfIdle(reason: EndReason, message: string): boolean {
    if (this.closed) return true;
    if (this.relay && !(this.relay.state === 'idle' && this.relay.atRest())) return false;
    this.end(reason, message);
    return true;
  }

  /** What the session was admitted as, for re-deciding its access after a reload; undefined before admission. */
  admitted(): AdmittedAs | undefined {
    if (!this.identity || !this.access || this.closed) return undefined;
    return { identity: this.identity, access: this.access };
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
    clock.clearTimeout(this.#durationTimer);
    this.#idleWatch?.stop();
    this.#lease?.release();
    this.#grantLease?.release();
    this.#clientLease?.release();
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

