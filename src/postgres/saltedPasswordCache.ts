import { createHash, pbkdf2 } from 'node:crypto';
import { saslPrep } from '../../protocols/postgres/scram';

/**
 * SCRAM's salted password, Hi(password, salt, i) = PBKDF2-HMAC-SHA-256, costs thousands of
 * HMACs. It is derived once per (password, salt, iterations) on the libuv thread pool (never
 * pbkdf2Sync, which would stall every session) and reused for every later login of that role.
 * Keys are a SHA-256 of the password, so the cache never holds a password.
 */
export class SaltedPasswordCache {
  readonly #entries = new Map<string, Promise<Buffer>>();
  readonly #maxEntries: number;
  /** How many PBKDF2 derivations actually ran (observable for tests and metrics). */
  derivations = 0;

  constructor(opts: { maxEntries?: number } = {}) {
    this.#maxEntries = opts.maxEntries ?? 1024;
  }

  get size(): number {
    return this.#entries.size;
  }

  derive(password: string, salt: Buffer, iterations: number): Promise<Buffer> {
    const key = `${createHash('sha256').update(password, 'utf8').digest('base64')}:${salt.toString('base64')}:${iterations}`;
    const hit = this.#entries.get(key);
    if (hit) {
      // Refresh recency: a Map iterates in insertion order, so the first key is the least recent.
      this.#entries.delete(key);
      this.#entries.set(key, hit);
      return hit;
    }
    this.derivations++;
    const pending = new Promise<Buffer>((resolve, reject) => {
      pbkdf2(saslPrep(password), salt, iterations, 32, 'sha256', (err, out) => (err ? reject(err) : resolve(out)));
    });
    // Concurrent logins share the in-flight derivation; a failure is not cached.
    pending.catch(() => this.#entries.delete(key));
    this.#entries.set(key, pending);
    while (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
    return pending;
  }

  clear(): void {
    this.#entries.clear();
  }
}

/** Process-wide cache used by connectPgUpstream unless another is passed. */
export const defaultSaltedPasswordCache = new SaltedPasswordCache();
