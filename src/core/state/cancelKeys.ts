import crypto from 'node:crypto';
import { randomBytes } from '../random';

/** What a PostgreSQL client gets in BackendKeyData and sends back in a CancelRequest. */
export interface CancelKey {
  processId: number;
  secretKey: Buffer;
}

/**
 * Gateway-issued cancel keys. Clients never see upstream process ids or keys: each session gets
 * a random pair, and a CancelRequest carrying it names that session (by id: the session may
 * live in another process, which the caller then asks).
 */
export interface CancelKeyStore {
  issue(sessionId: string): CancelKey;
  /** The session id for a CancelRequest, or undefined when the pid is unknown or the key does not match. */
  lookup(processId: number, secretKey: Buffer): string | undefined;
  release(processId: number): void;
  readonly size: number;
  /**
   * A key this process did not issue (lookup found nothing): with shared state, the instance
   * that issued it is named by the pid's instance bits and gets the cancel forwarded.
   */
  forward?(processId: number, secretKey: Buffer): void;
}

interface Entry {
  key: Buffer;
  sessionId: string;
}

export class InProcessCancelKeys implements CancelKeyStore {
  readonly #entries = new Map<number, Entry>();

  /** The pid keeps its sign bit clear (pg_basebackup expects that). */
  issue(sessionId: string): CancelKey {
    let processId: number;
    do {
      processId = crypto.randomInt(1, 0x7fffffff);
    } while (this.#entries.has(processId));
    const secretKey = randomBytes(4);
    this.#entries.set(processId, { key: secretKey, sessionId });
    return { processId, secretKey };
  }

  lookup(processId: number, secretKey: Buffer): string | undefined {
    const entry = this.#entries.get(processId);
    if (!entry || entry.key.length !== secretKey.length) return undefined;
    return crypto.timingSafeEqual(entry.key, secretKey) ? entry.sessionId : undefined;
  }

  release(processId: number): void {
    this.#entries.delete(processId);
  }

  get size(): number {
    return this.#entries.size;
  }
}
