import type { DevIssuer } from '../../src/dev/devIssuer';
import { TokenVerifier } from '../../src/identity/verifier';
import { log } from '../../src/log';
import { oidcConfigFor, startTestIssuer } from '../helpers/issuer';

/**
 * Issuer trouble reaches the operational log with the failing URL: an error while no keys are
 * loaded (every login is refused), a warning while earlier keys still verify tokens; a flood of
 * logins gives one line.
 */

const issuers: DevIssuer[] = [];
afterEach(async () => {
  jest.restoreAllMocks();
  await Promise.all(issuers.splice(0).map((d) => d.stop()));
});

async function issuer(): Promise<DevIssuer> {
  const dev = await startTestIssuer();
  issuers.push(dev);
  return dev;
}

const lines = (spy: jest.SpyInstance): string[] => spy.mock.calls.map((c) => String(c[0]));

test('an issuer down from the start is an error on the log, with its URL, once', async () => {
  const errors = jest.spyOn(log, 'error').mockImplementation(() => log);
  const dev = await issuer();
  dev.setAvailable(false, '503');
  const v = new TokenVerifier(oidcConfigFor(dev.issuer, { fetchTimeoutMs: 500, jwksCooldownMs: 0 }));
  await v.prefetch();
  const token = await dev.mintToken();
  for (let i = 0; i < 3; i++) await v.verify(token).catch(() => undefined);
  expect(lines(errors)).toHaveLength(1);
  expect(lines(errors)[0]).toMatch(new RegExp(`^the OIDC issuer ${dev.issuer} failed: the identity provider answered HTTP 503 for ${dev.issuer}/\\.well-known/openid-configuration.*no signing keys are loaded, so every login is refused`));
  expect(lines(errors)[0]).not.toContain(token);
});

test('an unreachable issuer names the address and the cause', async () => {
  const errors = jest.spyOn(log, 'error').mockImplementation(() => log);
  const dev = await issuer();
  await dev.stop();
  const v = new TokenVerifier(oidcConfigFor(dev.issuer, { fetchTimeoutMs: 500 }));
  await v.prefetch();
  expect(lines(errors)).toHaveLength(1);
  expect(lines(errors)[0]).toMatch(/could not reach the identity provider at http:\/\/127\.0\.0\.1:\d+\/.*ECONNREFUSED/);
});
