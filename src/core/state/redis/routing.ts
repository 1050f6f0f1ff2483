import crypto from 'node:crypto';
import type { InstanceIdentity } from '../../instance';
import { randomBytes } from '../../random';
import type { CancelKey, CancelKeyStore } from '../cancelKeys';
import { CONNECTION_ID_MAX, CONNECTION_ID_MIN, type ConnectionIdStore } from '../connectionIds';
import type { PeerBus } from './bus';

/**
 * Cancel keys and MySQL connection ids that name the instance which issued them, as
 * pgbouncer's peering does: a CancelRequest or KILL reaching another instance (a load balancer
 * does not know which connection a cancel belongs to) is forwarded to the owner without a lookup.
 *
 *   PostgreSQL pid (31 bits, sign clear): instance number (16 bits) | per-instance random (15 bits)
 *   MySQL id: 2^30 + instance number (16 bits) << 14 | per-instance random (14 bits)
 *
 * So one instance holds at most 32767 PostgreSQL and 16383 MySQL sessions at once, far above
 * what one Node.js process serves.
 */

const PG_LOCAL_BITS = 15;
const MYSQL_LOCAL_BITS = 14;

export function pgInstanceOf(processId: number): number {
  return processId >>> PG_LOCAL_BITS;
}

export function mysqlInstanceOf(id: number): number | undefined {
  if (id < CONNECTION_ID_MIN || id >= CONNECTION_ID_MAX) return undefined;
  return (id - CONNECTION_ID_MIN) >>> MYSQL_LOCAL_BITS;
}

/** Forwarded-message types on the bus. */
export const PG_CANCEL = 'pg-cancel';
export const MYSQL_KILL = 'mysql-kill';

export interface PgCancelMessage {
  processId: number;
  secretKey: string;
}

export interface MysqlKillMessage {
  id: number;
  sub: string;
  scope: 'query' | 'connection';
}

class LocalIds<V> {
  readonly map = new Map<number, V>();

  constructor(private readonly base: number, private readonly localBits: number) {}

  take(value: V): number {
    const space = (1 << this.localBits) - 1;
    if (this.map.size >= space) throw new Error(`this instance already holds ${space} sessions of this protocol, the most its ids can tell apart`);
    let id: number;
    do {
      id = this.base + crypto.randomInt(1, space + 1);
    } while (this.map.has(id));
    this.map.set(id, value);
    return id;
  }
}

export class InstanceCancelKeys implements CancelKeyStore {
  readonly #ids: LocalIds<{ key: Buffer; sessionId: string }>;

  constructor(private readonly self: InstanceIdentity, private readonly bus: PeerBus) {
    this.#ids = new LocalIds(self.number << PG_LOCAL_BITS, PG_LOCAL_BITS);
  }

  issue(sessionId: string): CancelKey {
    const secretKey = randomBytes(4);
    return { processId: this.#ids.take({ key: secretKey, sessionId }), secretKey };
  }

  lookup(processId: number, secretKey: Buffer): string | undefined {
    const entry = this.#ids.map.get(processId);
    if (!entry || entry.key.length !== secretKey.length) return undefined;
    return crypto.timingSafeEqual(entry.key, secretKey) ? entry.sessionId : undefined;
  }

  release(processId: number): void {
    this.#ids.map.delete(processId);
  }

  get size(): number {
    return this.#ids.map.size;
  }

  forward(processId: number, secretKey: Buffer): void {
    const owner = pgInstanceOf(processId);
    if (owner === this.self.number) return;
    void this.bus.send(owner, PG_CANCEL, { processId, secretKey: secretKey.toString('hex') } satisfies PgCancelMessage);
  }
}

export class InstanceConnectionIds implements ConnectionIdStore {
  readonly #ids: LocalIds<string>;

  constructor(private readonly self: InstanceIdentity, private readonly bus: PeerBus) {
    this.#ids = new LocalIds(CONNECTION_ID_MIN + (self.number << MYSQL_LOCAL_BITS), MYSQL_LOCAL_BITS);
  }

  issue(sessionId: string): number {
    return this.#ids.take(sessionId);
  }

  lookup(id: number): string | undefined {
    return this.#ids.map.get(id);
  }

  release(id: number): void {
    this.#ids.map.delete(id);
  }

  get size(): number {
    return this.#ids.map.size;
  }

  forwardKill(id: number, sub: string, scope: 'query' | 'connection'): Promise<boolean> | undefined {
    const owner = mysqlInstanceOf(id);
    if (owner === undefined || owner === this.self.number) return undefined;
    return this.bus.ask(owner, MYSQL_KILL, { id, sub, scope } satisfies MysqlKillMessage, 1, (replies) => replies.some((r) => r.body === true))
      .then((replies) => replies.some((r) => r.body === true));
  }
}
