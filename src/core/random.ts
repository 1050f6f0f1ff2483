import { randomFillSync } from 'node:crypto';

/**
 * Random bytes for per-connection values (session ids, MySQL scrambles, cancel keys), drawn
 * from the system CSPRNG 4 KiB at a time. A randomBytes() call per value costs a trip into
 * OpenSSL each time (several percent of the gateway's CPU when clients connect per query);
 * Node's randomInt() keeps a cache the same way. Every byte is handed out once.
 */
const POOL_SIZE = 4096;
const pool = Buffer.alloc(POOL_SIZE);
let offset = POOL_SIZE;

/** `n` fresh random bytes (a copy: callers may keep or change them). */
export function randomBytes(n: number): Buffer {
  if (n > POOL_SIZE) return randomFillSync(Buffer.alloc(n));
  if (offset + n > POOL_SIZE) {
    randomFillSync(pool);
    offset = 0;
  }
  const out = Buffer.from(pool.subarray(offset, offset + n));
  pool.fill(0, offset, offset + n); // nothing handed out stays behind
  offset += n;
  return out;
}

/** A session id: `prefix` and `bytes` random bytes in hex. */
export function randomId(prefix: string, bytes: number): string {
  return prefix + randomBytes(bytes).toString('hex');
}
