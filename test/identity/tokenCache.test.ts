import fc from 'fast-check';
import type { DevIssuer } from '../../src/dev/devIssuer';
import { TokenCache, tokenDigest } from '../../src/identity/tokenCache';
import { TokenRejectedError } from '../../src/identity/types';
import { TokenVerifier } from '../../src/identity/verifier';
import { oidcConfigFor, startTestIssuer } from '../helpers/issuer';

let dev: DevIssuer;
beforeAll(async () => {
  dev = await startTestIssuer();
});
afterAll(() => dev.stop());

describe('verified-token cache in the verifier', () => {
  test('many verifies of one token (concurrent and sequential) cost one signature check', async () => {
    const v = new TokenVerifier(oidcConfigFor(dev.issuer));
    const token = await dev.mintToken();
    const concurrent = await Promise.all(Array.from({ length: 25 }, () => v.verify(token)));
    for (let i = 0; i < 25; i++) await v.verify(token);
    expect(v.stats.signatureChecks).toBe(1);
    expect(v.stats.cacheHits).toBe(25);
    expect(new Set(concurrent).size).toBe(1);
    expect(Object.isFrozen(concurrent[0]) && Object.isFrozen(concurrent[0].groups)).toBe(true);
    await v.verify(await dev.mintToken({ clientId: 'svc-writer' }));
    expect(v.stats.signatureChecks).toBe(2);
  });

  test('a cache hit re-checks expiry: a cached token is refused once exp + skew has passed', async () => {
    let now = Date.now();
    const v = new TokenVerifier(oidcConfigFor(dev.issuer, { clockSkewMs: 5_000 }), { now: () => now });
    const token = await dev.mintToken({ expiresInSec: 60 });
    const exp = (await v.verify(token)).expiresAt;
    now = exp * 1000 + 4_000; // inside the skew: still served from the cache
    await v.verify(token);
    expect(v.stats).toMatchObject({ signatureChecks: 1, cacheHits: 1 });
    now = exp * 1000 + 5_000;
    const err = await v.verify(token).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TokenRejectedError);
    expect((err as TokenRejectedError).reason).toBe('expired');
    expect(v.stats.cacheHits).toBe(1);
  });

  test('inspect is never cached', async () => {
    const v = new TokenVerifier(oidcConfigFor(dev.issuer));
    const token = await dev.mintToken();
    await v.inspect(token);
    await v.inspect(token);
    expect(v.stats).toMatchObject({ signatureChecks: 2, cachedTokens: 0 });
  });

  test('the cache is bounded', async () => {
    const v = new TokenVerifier(oidcConfigFor(dev.issuer), { cacheEntries: 3 });
    for (let i = 0; i < 5; i++) await v.verify(await dev.mintToken());
    expect(v.stats.cachedTokens).toBe(3);
  });
});

describe('TokenCache', () => {
  test('evicts the least recently used entry', () => {
    const c = new TokenCache<string>(2);
    c.set('a', 'A', 1000);
    c.set('b', 'B', 1000);
    expect(c.get('a', 0)).toBe('A'); // a is now most recent
    c.set('c', 'C', 1000);
    expect([c.get('a', 0), c.get('b', 0), c.get('c', 0)]).toEqual(['A', undefined, 'C']);
  });

  test('never serves an entry at or after validUntil, and drops it', () => {
    const c = new TokenCache<string>();
    c.set('a', 'A', 1000);
    expect(c.get('a', 999)).toBe('A');
    expect(c.get('a', 1000)).toBeUndefined();
    expect(c.size).toBe(0);
  });

  test('size never exceeds the bound whatever the sequence of operations', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.array(fc.tuple(fc.constantFrom('get', 'set'), fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 100 }))), (max, ops) => {
        const c = new TokenCache<number>(max);
        for (const [op, key, t] of ops) {
          if (op === 'set') c.set(String(key), key, t);
          else {
            const v = c.get(String(key), 50);
            if (v !== undefined) expect(v).toBe(key);
          }
          expect(c.size).toBeLessThanOrEqual(max);
        }
      }),
    );
  });

  test('rejects a nonsensical bound; digests are SHA-256 hex', () => {
    expect(() => new TokenCache(0)).toThrow(RangeError);
    expect(tokenDigest('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });
});
