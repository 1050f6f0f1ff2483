import { createServer, type Server, type Socket } from 'node:net';
import type { DevIssuer } from '../../src/dev/devIssuer';
import { discoverIssuer, DiscoveryError } from '../../src/identity/discovery';
import { InsecureUrlError, isLoopbackHost, requireSecureUrl } from '../../src/identity/secureUrl';
import { TokenRejectedError } from '../../src/identity/types';
import { TokenVerifier } from '../../src/identity/verifier';
import { oidcConfigFor, startTestIssuer, expectNoTokenIn } from '../helpers/issuer';

const KEYS = 'v1/keys';
const OPENID = '.well-known/openid-configuration';
const OAUTH = '.well-known/oauth-authorization-server';
/** Cooldowns and cache ages far longer than a test takes, so only a skip of the clock crosses them. */
const LONG = 10_000;

/**
 * A clock the tests move forward instead of sleeping; time keeps running between skips. The
 * verifier takes it as `now` (it times the retry backoff after a failed fetch with it), but
 * jose's remote key set reads Date.now() itself for the refetch cooldown and the cache age, so
 * Date.now follows the same clock.
 */
const realNow = Date.now;
let offset = 0;
const clock = { now: (): number => realNow() + offset, skip: (ms: number): void => void (offset += ms) };
beforeEach(() => {
  offset = 0;
  jest.spyOn(Date, 'now').mockImplementation(clock.now);
});
afterEach(() => jest.restoreAllMocks());

const issuers: DevIssuer[] = [];
async function issuer(...args: Parameters<typeof startTestIssuer>): Promise<DevIssuer> {
  const dev = await startTestIssuer(...args);
  issuers.push(dev);
  return dev;
}
afterEach(async () => {
  await Promise.all(issuers.splice(0).map((d) => d.stop()));
});

async function rejection(p: Promise<unknown>): Promise<TokenRejectedError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TokenRejectedError);
  return err as TokenRejectedError;
}

describe('key rotation and the refetch cooldown', () => {
  test('a token with a newly rotated kid verifies after exactly one refetch', async () => {
    const dev = await issuer();
    const v = new TokenVerifier(oidcConfigFor(dev.issuer, { jwksCooldownMs: LONG }), { now: clock.now });
    await v.verify(await dev.mintToken());
    expect(dev.requestCount(KEYS)).toBe(1);
    await dev.rotateKeys({ keepOld: true });
    clock.skip(LONG + 50); // past the cooldown since the first fetch
    await expect(v.verify(await dev.mintToken({ clientId: 'svc-writer' }))).resolves.toMatchObject({ sub: 'svc-writer' });
    expect(dev.requestCount(KEYS)).toBe(2);
    expect(dev.publicJwks().keys).toHaveLength(2);
  });

  test('a flood of unknown-kid tokens costs at most one JWKS fetch per cooldown', async () => {
    const dev = await issuer();
    const v = new TokenVerifier(oidcConfigFor(dev.issuer, { jwksCooldownMs: LONG }), { now: clock.now });
    await v.verify(await dev.mintToken());
    expect(dev.requestCount(KEYS)).toBe(1);

    const flood = async (n: number): Promise<void> => {
      const tokens = await Promise.all(Array.from({ length: n }, (_, i) => dev.mintToken({ kid: `bogus-${i}-${Math.random()}` })));
      const results = await Promise.allSettled(tokens.map((t) => v.verify(t)));
      for (const r of results) {
        expect(r.status).toBe('rejected');
        expect((r as PromiseRejectedResult).reason).toMatchObject({ reason: 'unknown_key' });
      }
    };
    await flood(50); // within the cooldown of the first fetch: no refetch at all
    expect(dev.requestCount(KEYS)).toBe(1);
    clock.skip(LONG + 50);
    await flood(50); // cooldown passed: the concurrent misses share one refetch
    expect(dev.requestCount(KEYS)).toBe(2);
    await flood(20); // and the next ones are inside the new cooldown
    expect(dev.requestCount(KEYS)).toBe(2);
  });

  test('a key removed at the IdP stops verifying only after a refresh (old kid without keepOld)', async () => {
    const dev = await issuer();
    const v = new TokenVerifier(oidcConfigFor(dev.issuer, { jwksCooldownMs: LONG }), { now: clock.now });
    await v.verify(await dev.mintToken());
    await dev.rotateKeys();
    clock.skip(LONG + 50);
    await expect(v.verify(await dev.mintToken())).resolves.toBeDefined();
    expect(dev.publicJwks().keys).toHaveLength(1);
  });
});

describe('IdP outages', () => {
  test.each(['503', 'drop', 'hang'] as const)('IdP down (%s) after keys were cached: tokens still verify, even once the cache is stale', async (mode) => {
    const dev = await issuer();
    const v = new TokenVerifier(oidcConfigFor(dev.issuer, { jwksCacheMaxAgeMs: LONG, fetchTimeoutMs: 300 }), { now: clock.now });
    await v.verify(await dev.mintToken());
    dev.setAvailable(false, mode);
    clock.skip(LONG + 50); // jose's cache is now stale and would reload
    const started = Date.now();
    await expect(v.verify(await dev.mintToken({ clientId: 'svc-writer' }))).resolves.toMatchObject({ sub: 'svc-writer' });
    expect(Date.now() - started).toBeLessThan(1000);
    // Further tokens are served from the last good keys without waiting for the IdP again.
    const again = Date.now();
    await expect(v.verify(await dev.mintToken({ claims: { jti: 'AT.other' } }))).resolves.toBeDefined();
    expect(Date.now() - again).toBeLessThan(200);
    expect(dev.requestCount(KEYS)).toBe(2);
  });

  test.each(['503', 'drop', 'hang'] as const)('IdP down (%s) from the start: idp_unavailable within the fetch timeout', async (mode) => {
    const dev = await issuer();
    dev.setAvailable(false, mode);
    const v = new TokenVerifier(oidcConfigFor(dev.issuer, { fetchTimeoutMs: 500 }));
    const token = await dev.mintToken();
    const started = Date.now();
    const err = await rejection(v.verify(token));
    expect(Date.now() - started).toBeLessThan(1200);
    expect(err.reason).toBe('idp_unavailable');
    expect(err.message).toContain(dev.issuer);
    expect(err.message).toContain('not a problem with your token');
    expectNoTokenIn(err.message, token);
  });

  test('unreachable issuer (connection refused) fails fast, then recovers after the retry backoff', async () => {
    const first = await issuer();
    const port = Number(new URL(first.issuer).port);
    await first.stop();
    const v = new TokenVerifier(oidcConfigFor(first.issuer, { jwksCooldownMs: LONG }), { now: clock.now });
    await expect(v.prefetch()).resolves.toBeUndefined();
    const stale = await first.mintToken();
    const started = Date.now();
    const err = await rejection(v.verify(stale));
    expect(Date.now() - started).toBeLessThan(500);
    expect(err.reason).toBe('idp_unavailable');
    expect(err.message).toContain('ECONNREFUSED');
    const back = await issuer({ port }); // same issuer URL, new keys
    clock.skip(LONG + 50); // past the retry backoff
    await expect(v.verify(await back.mintToken())).resolves.toMatchObject({ issuer: back.issuer });
    expect(back.requestCount(KEYS)).toBe(1);
  });

  test('IdP down at startup, prefetch does not throw, verify succeeds once it is back', async () => {
    const dev = await issuer();
    dev.setAvailable(false);
    const v = new TokenVerifier(oidcConfigFor(dev.issuer, { jwksCooldownMs: LONG }), { now: clock.now });
    await expect(v.prefetch()).resolves.toBeUndefined();
    const token = await dev.mintToken();
    expect((await rejection(v.verify(token))).reason).toBe('idp_unavailable');
    dev.setAvailable(true);
    // Inside the retry backoff the gateway fails fast instead of asking the IdP again.
    const before = dev.requestCount(OPENID);
    expect((await rejection(v.verify(token))).reason).toBe('idp_unavailable');
    expect(dev.requestCount(OPENID)).toBe(before);
    clock.skip(LONG + 50); // past the retry backoff
    await expect(v.verify(token)).resolves.toMatchObject({ sub: 'svc-reporting' });
  });

  test('prefetch warms discovery and keys so the first verify makes no request', async () => {
    const dev = await issuer();
    const v = new TokenVerifier(oidcConfigFor(dev.issuer));
    await v.prefetch();
    expect([dev.requestCount(OPENID), dev.requestCount(KEYS)]).toEqual([1, 1]);
    await v.verify(await dev.mintToken());
    expect([dev.requestCount(OPENID), dev.requestCount(KEYS)]).toEqual([1, 1]);
  });
});

describe('discovery', () => {
  test('falls back to oauth-authorization-server', async () => {
    const dev = await issuer({ discoveryDocuments: ['oauth-authorization-server'] });
    const meta = await discoverIssuer(dev.issuer, 1000);
    expect(meta).toEqual({ issuer: dev.issuer, jwksUri: dev.jwksUri, tokenEndpoint: dev.tokenEndpoint, source: `${dev.issuer}/${OAUTH}` });
    const v = new TokenVerifier(oidcConfigFor(dev.issuer));
    await expect(v.verify(await dev.mintToken())).resolves.toBeDefined();
    expect(dev.requestCount(OPENID)).toBe(2);
    expect(dev.requestCount(OAUTH)).toBe(2);
  });

  test('no metadata at all gives a message that says what to configure', async () => {
    const dev = await issuer({ discoveryDocuments: [] });
    const err = await discoverIssuer(dev.issuer, 1000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DiscoveryError);
    expect((err as Error).message).toMatch(/HTTP 404.*HTTP 404.*oidc\.jwksUri/);
  });

  test('the document must name exactly the configured issuer', async () => {
    const dev = await issuer({ metadataOverrides: { issuer: 'http://127.0.0.1:1/oauth2/other' } });
    await expect(discoverIssuer(dev.issuer, 1000)).rejects.toThrow(/must match exactly/);
    const v = new TokenVerifier(oidcConfigFor(dev.issuer));
    const err = await rejection(v.verify(await dev.mintToken()));
    expect(err.reason).toBe('idp_unavailable');
    expect(err.message).toContain('must match exactly');
  });

  test('an advertised non-loopback http JWKS URL is refused', async () => {
    const dev = await issuer({ metadataOverrides: { jwks_uri: 'http://keys.example.com/v1/keys' } });
    await expect(discoverIssuer(dev.issuer, 1000)).rejects.toThrow(/http:\/\/ on a non-loopback host/);
  });

  test('an explicit jwksUri skips discovery', async () => {
    const dev = await issuer();
    const v = new TokenVerifier(oidcConfigFor(dev.issuer, { jwksUri: dev.jwksUri }));
    await v.verify(await dev.mintToken());
    expect([dev.requestCount(OPENID), dev.requestCount(OAUTH), dev.requestCount(KEYS)]).toEqual([0, 0, 1]);
  });

  test('a discovery endpoint that never answers is bounded by the fetch timeout', async () => {
    const sockets: Socket[] = [];
    const silent: Server = createServer((sock) => sockets.push(sock));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    const started = Date.now();
    const err = await discoverIssuer(`http://127.0.0.1:${port}/oauth2/default`, 300).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(err).toMatchObject({ unreachable: true, message: expect.stringContaining('no answer within 300 ms') });
    for (const sock of sockets) sock.destroy();
    await new Promise((r) => silent.close(r));
  });
});

describe('https enforcement', () => {
  test('non-loopback http issuer or JWKS URL is refused when the verifier is built', () => {
    expect(() => new TokenVerifier(oidcConfigFor('http://idp.example.com/oauth2/default'))).toThrow(InsecureUrlError);
    expect(() => new TokenVerifier(oidcConfigFor('https://idp.example.com/oauth2/default', { jwksUri: 'http://idp.example.com/keys' }))).toThrow(/oidc\.jwksUri/);
    expect(() => new TokenVerifier(oidcConfigFor('https://idp.example.com/oauth2/default'))).not.toThrow();
    expect(() => requireSecureUrl('ftp://idp.example.com/', 'issuer')).toThrow(/unsupported scheme/);
    expect(() => requireSecureUrl('not a url', 'issuer')).toThrow(/not a valid absolute URL/);
  });

  test('loopback detection', () => {
    for (const h of ['localhost', '127.0.0.1', '127.10.20.30', '::1', '[::1]', 'LOCALHOST']) expect(isLoopbackHost(h)).toBe(true);
    for (const h of ['128.0.0.1', '127.evil.com', '10.0.0.1', 'localhost.evil.com', '127.0.0.256', '::2']) expect(isLoopbackHost(h)).toBe(false);
    expect(requireSecureUrl('http://[::1]:8080/oauth2/default', 'issuer').hostname).toBe('[::1]');
  });
});
