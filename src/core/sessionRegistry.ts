import { EventEmitter } from 'node:events';
import type { Protocol } from '../config/schema';
import type { Identity } from '../identity/types';
import type { SessionState } from './relay';

/** What an operator sees of a live session. Times are ms since the epoch. */
export interface SessionInfo {
  id: string;
  protocol: Protocol;
  sub?: string;
  cid?: string;
  jti?: string;
  groups?: readonly string[];
  tokenExpiresAt?: number;
  tokenIssuedAt?: number;
  grant?: string;
  role?: string;
  /** The database alias the client named. */
  database?: string;
  upstream?: string;
  remote: string;
  startedAt: number;
  state: SessionState;
  queryStartedAt?: number;
  queries: number;
  bytesFromClient: number;
  bytesToClient: number;
}

/** What the client asked for and was granted, for audit records and the session list. */
export interface SessionAccess {
  grant: string;
  upstream: string;
  role: string;
  /** The database alias the client named ('' for a MySQL session that has not chosen one yet). */
  database: string;
}

/** A session's verified identity and the access it was admitted to. */
export interface AdmittedAs {
  readonly identity: Readonly<Identity>;
  readonly access: Readonly<SessionAccess>;
}

/** Why an operator or the gateway itself ends a live session; each protocol has its own error for each. */
export type EndReason = 'shutdown' | 'killed' | 'revoked' | 'grant_withdrawn';

/** A client session of either protocol, as the registry and the operations around it see it. */
export interface LiveSession {
  readonly id: string;
  readonly protocol: Protocol;
  info(): SessionInfo;
  /**
   * Ends the session now: the client gets its protocol's error for `reason` with `message`, a
   * statement still running upstream is interrupted, and the end is audited (with `by`, who ended it).
   */
  end(reason: EndReason, message: string, by?: string): void;
  /** Ends the session (as end()) if it is idle outside a transaction or still in its handshake; false when busy. */
  endIfIdle(reason: EndReason, message: string): boolean;
  /** The identity and access the session was admitted with; undefined before admission. */
  admitted(): AdmittedAs | undefined;
  /** Interrupts the statement running upstream (a CancelRequest or KILL QUERY that named this session). */
  cancelQuery(): Promise<void>;
}

export interface SessionFilter {
  sub?: string;
  /** The token's client id (`cid`), or its `sub` when it has none, as grants match clients. */
  client?: string;
  jti?: string;
  grant?: string;
  protocol?: Protocol;
}

interface RegistryEvents {
  start: [LiveSession];
  end: [LiveSession, string];
}

/**
 * Every live client session of both protocols. Listeners create sessions and sessions register
 * themselves here from their first byte to their end; operator actions (kill, revoke, reload,
 * shutdown) find them here.
 */
export class SessionRegistry extends EventEmitter<RegistryEvents> {
  readonly #sessions = new Map<string, LiveSession>();

  add(session: LiveSession): void {
    this.#sessions.set(session.id, session);
    this.emit('start', session);
  }

  /** Called by the session when it has ended; `reason` is its audit reason. */
  remove(session: LiveSession, reason: string): void {
    if (this.#sessions.get(session.id) !== session) return;
    this.#sessions.delete(session.id);
    this.emit('end', session, reason);
  }

  get(id: string): LiveSession | undefined {
    return this.#sessions.get(id);
  }

  get size(): number {
    return this.#sessions.size;
  }

  /** The sessions that match every given field of `filter`, oldest first. */
  select(filter: SessionFilter = {}): LiveSession[] {
    const out: LiveSession[] = [];
    for (const s of this.#sessions.values()) if (matches(s, filter)) out.push(s);
    return out;
  }

  /** Ends one session (see LiveSession.end); false when there is no such session. */
  end(id: string, reason: EndReason, message: string, by?: string): boolean {
    const s = this.#sessions.get(id);
    if (!s) return false;
    s.end(reason, message, by);
    return true;
  }

  /** Ends every session that matches `filter`; returns how many. */
  endAll(reason: EndReason, message: string, filter: SessionFilter = {}): number {
    const chosen = this.select(filter);
    for (const s of chosen) s.end(reason, message);
    return chosen.length;
  }
}

function matches(s: LiveSession, f: SessionFilter): boolean {
  if (f.protocol !== undefined && s.protocol !== f.protocol) return false;
  if (f.sub === undefined && f.client === undefined && f.jti === undefined && f.grant === undefined) return true;
  const i = s.info();
  if (f.sub !== undefined && i.sub !== f.sub) return false;
  if (f.client !== undefined && (i.cid ?? i.sub) !== f.client) return false;
  if (f.jti !== undefined && i.jti !== f.jti) return false;
  if (f.grant !== undefined && i.grant !== f.grant) return false;
  return true;
}
