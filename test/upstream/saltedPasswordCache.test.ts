import { pbkdf2Sync } from 'node:crypto';
import { SaltedPasswordCache } from '../../src/postgres/saltedPasswordCache';

describe('SaltedPasswordCache', () => {
  const salt = Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64');

  test('derives PBKDF2-SHA-256 once per (password, salt, iterations)', async () => {
    const cache = new SaltedPasswordCache();
    const [a, b] = await Promise.all([cache.derive('pencil', salt, 4096), cache.derive('pencil', salt, 4096)]);
    expect(a).toEqual(pbkdf2Sync('pencil', salt, 4096, 32, 'sha256'));
    expect(b).toBe(a);
    expect(await cache.derive('pencil', salt, 4096)).toBe(a);
    expect(cache.derivations).toBe(1);

    await cache.derive('pencil', salt, 4097);
    await cache.derive('pencil', Buffer.from('other salt'), 4096);
    await cache.derive('crayon', salt, 4096);
    expect(cache.derivations).toBe(4);
    expect(cache.size).toBe(4);
  });

  test('stays within maxEntries, dropping the least recently used', async () => {
    const cache = new SaltedPasswordCache({ maxEntries: 2 });
    await cache.derive('a', salt, 1);
    await cache.derive('b', salt, 1);
    await cache.derive('a', salt, 1); // a is now the most recent
    await cache.derive('c', salt, 1); // evicts b
    expect(cache.size).toBe(2);
    await cache.derive('a', salt, 1);
    expect(cache.derivations).toBe(3);
    await cache.derive('b', salt, 1);
    expect(cache.derivations).toBe(4);
  });

  test('a failed derivation is not cached', async () => {
    const cache = new SaltedPasswordCache();
    await expect(cache.derive('x', salt, -1)).rejects.toThrow();
    expect(cache.size).toBe(0);
  });
});
