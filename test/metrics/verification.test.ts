import type { DevIssuer } from '../../src/dev/devIssuer';
import { TokenVerifier, type VerificationObserver } from '../../src/identity/verifier';
import { oidcConfigFor, startTestIssuer } from '../helpers/issuer';

/** The verifier's observer hook, which the gateway's metrics use: every verification and every JWKS request, with its result. */

const LONG = 10_000;
const realNow = Date.now;
let offset = 0;
const clock = { now: (): number => realNow() + offset, skip: (ms: number): void => void (offset += ms) };
beforeEach(() => {
  offset = 0;
  jest.spyOn(Date, 'now').mockImplementation(clock.now); // jose's key set reads Date.now for its cooldown
});
afterEach(() => jest.restoreAllMocks());

let dev: DevIssuer;
beforeEach(async () => {
  dev = await startTestIssuer();
});
afterEach(async () => {
  await dev.stop();
});

function recorder(): VerificationObserver & { verifications: string[]; fetches: boolean[] } {
  const r = {
    verifications: [] as string[],
    fetches: [] as boolean[],
    verification(result: string, cached: boolean) {
      r.verifications.push(`${result}/${cached ? 'hit' : 'miss'}`);
    },
    jwksFetch(ok: boolean) {
      r.fetches.push(ok);
    },
  };
  return r;
}

test('a miss, a cache hit, a merged concurrent verification and a refusal are each told once', async () => {
  const seen = recorder();
  const v = new TokenVerifier(oidcConfigFor(dev.issuer, { jwksCooldownMs: LONG }), { now: clock.now, observer: seen });
  const token = await dev.mintToken();
  await v.verify(token);
  await v.verify(token);
  const fresh = await dev.mintToken({ clientId: 'svc-writer' });
  await Promise.all([v.verify(fresh), v.verify(fresh)]);
  await expect(v.verify('not-a-token')).rejects.toMatchObject({ reason: 'malformed' });
  expect(seen.verifications).toEqual(['ok/miss', 'ok/hit', 'ok/miss', 'ok/hit', 'malformed/miss']);
  expect(seen.fetches).toEqual([true]);
});

test.each(['503', 'drop'] as const)('a JWKS refetch that fails (%s) is told as failed', async (mode) => {
  const seen = recorder();
  const v = new TokenVerifier(oidcConfigFor(dev.issuer, { jwksCooldownMs: LONG }), { now: clock.now, observer: seen });
  await v.verify(await dev.mintToken());
  await dev.rotateKeys();
  dev.setAvailable(false, mode);
  clock.skip(LONG + 50);
  await expect(v.verify(await dev.mintToken({ clientId: 'svc-writer' }))).rejects.toHaveProperty('reason');
  expect(seen.fetches).toEqual([true, false]);
  expect(seen.verifications[0]).toBe('ok/miss');
  expect(seen.verifications[1]).toMatch(/^(idp_unavailable|unknown_key)\/miss$/);
});
