import { EventEmitter } from 'node:events';
import { randomId } from '../random';

/**
 * Operator revocations: "this subject / client / token may not connect". A revocation blocks a
 * token issued at or before it was made (`iat` <= createdAt, or no `iat` at all), so the agent is
 * admitted again with a token issued afterwards; with `until` it blocks every matching token
 * until then (a lock). It lapses once no token it blocks can still be valid.
 */
export type RevocationTarget = { sub: string } | { client: string } | { jti: string };

export interface Revocation {
  id: string;
  target: RevocationTarget;
  reason?: string;
  /** Who made it (an operator's subject, or "admin" for the token file). */
  by?: string;
  /** ms since the epoch. */
  createdAt: number;
  /** Every matching token is refused until then (ms since the epoch). */
  until?: number;
  /** When it lapses by itself; undefined: it lasts until removed. */
  expiresAt?: number;
}

export interface NewRevocation {
  target: RevocationTarget;
  reason?: string;
  by?: string;
  until?: number;
}

/** The token claims a revocation looks at. */
export interface RevocableToken {
  sub: string;
  clientId?: string;
  jti?: string;
  /** Seconds since the epoch. */
  issuedAt?: number;
}

interface RevocationEvents {
  added: [Revocation];
  removed: [Revocation];
}

/** Where revocations live: in this process, or (for several instances) shared storage. */
export interface RevocationStore extends EventEmitter<RevocationEvents> {
  /** Records a revocation made now; `maxTokenLifetimeMs` (oidc.maxTokenLifetime) bounds how long it must last. */
  add(input: NewRevocation, now: number, maxTokenLifetimeMs?: number): Revocation;
  remove(id: string): Revocation | undefined;
  /** The revocations still in force at `now`. */
  list(now: number): Revocation[];
  /** The revocation that refuses this token at `now`, if any. */
  blocking(token: RevocableToken, now: number): Revocation | undefined;
}

/** True when the revocation names this token's subject, client or id. */
export function targets(r: Revocation, token: RevocableToken): boolean {
  const t = r.target;
  if ('sub' in t) return token.sub === t.sub;
  if ('client' in t) return (token.clientId ?? token.sub) === t.client;
  return token.jti !== undefined && token.jti === t.jti;
}

/** True when `r`, in force at `now`, refuses `token`. */
export function refuses(r: Revocation, token: RevocableToken, now: number): boolean {
  if (r.expiresAt !== undefined && now >= r.expiresAt) return false;
  if (!targets(r, token)) return false;
  if (r.until !== undefined && now < r.until) return true;
  return token.issuedAt === undefined || token.issuedAt * 1000 <= r.createdAt;
}

/** When a revocation made at `createdAt` can lapse: no token it blocks is valid after that. */
export function lapseTime(createdAt: number, until: number | undefined, maxTokenLifetimeMs: number | undefined): number | undefined {
  if (maxTokenLifetimeMs === undefined) return until;
  const lifetimeEnd = createdAt + maxTokenLifetimeMs;
  return until === undefined ? lifetimeEnd : Math.max(until, lifetimeEnd);
}

export class InProcessRevocations extends EventEmitter<RevocationEvents> implements RevocationStore {
  readonly #byId = new Map<string, Revocation>();

  add(input: NewRevocation, now: number, maxTokenLifetimeMs?: number): Revocation {
    const r: Revocation = {
      id: randomId('rv-', 8), target: input.target, reason: input.reason, by: input.by, createdAt: now,
      until: input.until, expiresAt: lapseTime(now, input.until, maxTokenLifetimeMs),
    };
    this.#byId.set(r.id, r);
    this.emit('added', r);
    return r;
  }

  /** Puts back a revocation made earlier (one read from storage at startup), without an 'added' event. */
  protected restore(r: Revocation): void {
    this.#byId.set(r.id, r);
  }

  remove(id: string): Revocation | undefined {
    const r = this.#byId.get(id);
    if (!r) return undefined;
    this.#byId.delete(id);
    this.emit('removed', r);
    return r;
  }

  list(now: number): Revocation[] {
    this.#prune(now);
    return [...this.#byId.values()];
  }

  blocking(token: RevocableToken, now: number): Revocation | undefined {
    if (this.#byId.size === 0) return undefined;
    for (const r of this.#byId.values()) if (refuses(r, token, now)) return r;
    return undefined;
  }

  #prune(now: number): void {
    for (const [id, r] of this.#byId) if (r.expiresAt !== undefined && now >= r.expiresAt) this.#byId.delete(id);
  }
}
