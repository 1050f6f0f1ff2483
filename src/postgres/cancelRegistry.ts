import crypto from 'node:crypto';
import { randomBytes } from '../core/random';

/** Something a CancelRequest can reach: the session that owns the key. */
export interface Cancellable {
  cancelUpstreamQuery(): Promise<void>;
}

interface Entry {
  key: Buffer;
  target: Cancellable;
}

/**
 * Gateway-issued cancel keys. Clients never see upstream process ids or keys: each session
 * gets a random (processId, secretKey) pair here, and a CancelRequest carrying it is routed
 * to that session's current upstream connection.
 */
export class CancelRegistry {
  private readonly entries = new Map<number, Entry>();

  /** Issue a fresh key pair for a session. The pid keeps its sign bit clear (pg_basebackup expects that). */
  issue(target: Cancellable): { processId: number; secretKey: Buffer } {
    let processId: number;
    do {
      processId = crypto.randomInt(1, 0x7fffffff);
    } while (this.entries.has(processId));
    const secretKey = randomBytes(4);
    this.entries.set(processId, { key: secretKey, target });
    return { processId, secretKey };
  }

  revoke(processId: number): void {
    this.entries.delete(processId);
  }

  /** The session for a CancelRequest, or undefined when the pid is unknown or the key does not match. */
  lookup(processId: number, secretKey: Buffer): Cancellable | undefined {
    const entry = this.entries.get(processId);
    if (!entry || entry.key.length !== secretKey.length) return undefined;
    return crypto.timingSafeEqual(entry.key, secretKey) ? entry.target : undefined;
  }

  get size(): number {
    return this.entries.size;
  }
}
