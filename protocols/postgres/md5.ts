import { createHash } from 'node:crypto';

/**
 * The PostgreSQL md5 password response: 'md5' + md5hex(md5hex(password + user) + salt).
 * The salt is the 4 bytes from AuthenticationMD5Password.
 */
export function md5Password(user: string, password: string, salt: Buffer): string {
  if (salt.length !== 4) throw new RangeError(`md5 salt must be 4 bytes, got ${salt.length}.`);
  const inner = createHash('md5').update(password, 'utf8').update(user, 'utf8').digest('hex');
  return 'md5' + createHash('md5').update(inner, 'ascii').update(salt).digest('hex');
}
