import type { DevIssuer } from '../../src/dev/devIssuer';
import { startDevIssuer } from '../../src/dev/devIssuer';
import { TokenVerifier } from '../../src/identity/verifier';
import { claimsOf, oidcConfigFor, startTestIssuer, TEST_AUDIENCE, TEST_CLIENTS } from '../helpers/issuer';

let dev: DevIssuer;
beforeAll(async () => {
  dev = await startTestIssuer({ tokenLifetimeSec: 600 });
});
afterAll(() => dev.stop());

const [reporting] = TEST_CLIENTS;
const basic = (id: string, secret: string): string => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

async function tokenRequest(form: Record<string, string>, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown>; text: string }> {
  const res = await fetch(dev.tokenEndpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form).toString(),
  });
  const text = await res.text();
  return { status: res.status, body: JSON.parse(text) as Record<string, unknown>, text };
}

describe('token endpoint (client credentials)', () => {
  test('client_secret_basic issues an Okta-shaped token the verifier accepts', async () => {
    const r = await tokenRequest({ grant_type: 'client_credentials', scope: 'db:connect' }, { authorization: basic(reporting.clientId, reporting.clientSecret) });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ token_type: 'Bearer', expires_in: 600, scope: 'db:connect', access_token: expect.any(String) });
    const token = r.body.access_token as string;
    const header = JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString()) as Record<string, unknown>;
    expect(Object.keys(header).sort()).toEqual(['alg', 'kid']);
    const claims = claimsOf(token);
    expect(claims).toMatchObject({ ver: 1, iss: dev.issuer, aud: TEST_AUDIENCE, cid: 'svc-reporting', sub: 'svc-reporting', scp: ['db:connect'], groups: ['analysts'] });
    expect((claims.exp as number) - (claims.iat as number)).toBe(600);
    const id = await new TokenVerifier(oidcConfigFor(dev.issuer)).verify(token);
    expect(id).toMatchObject({ sub: 'svc-reporting', clientId: 'svc-reporting', scopes: ['db:connect'] });
  });

  test('client_secret_post works, and no scope means all of the client scopes', async () => {
    const r = await tokenRequest({ grant_type: 'client_credentials', client_id: reporting.clientId, client_secret: reporting.clientSecret });
    expect(r.status).toBe(200);
    expect(claimsOf(r.body.access_token as string).scp).toEqual(reporting.scopes);
  });

  test('a wrong secret is 401 invalid_client and the secret is not echoed', async () => {
    for (const r of [
      await tokenRequest({ grant_type: 'client_credentials' }, { authorization: basic(reporting.clientId, 'wrong-secret-value') }),
      await tokenRequest({ grant_type: 'client_credentials', client_id: reporting.clientId, client_secret: 'wrong-secret-value' }),
      await tokenRequest({ grant_type: 'client_credentials', client_id: 'nobody', client_secret: 'wrong-secret-value' }),
      await tokenRequest({ grant_type: 'client_credentials' }),
    ]) {
      expect(r.status).toBe(401);
      expect(r.body).toEqual({ error: 'invalid_client', error_description: expect.any(String) });
      expect(r.text).not.toContain('wrong-secret-value');
      expect(r.text).not.toContain(reporting.clientSecret);
    }
  });

  test('unsupported grant and a scope outside the client are 400', async () => {
    const auth = { authorization: basic(reporting.clientId, reporting.clientSecret) };
    const grant = await tokenRequest({ grant_type: 'password', username: 'x', password: 'y' }, auth);
    expect([grant.status, grant.body.error]).toEqual([400, 'unsupported_grant_type']);
    const scope = await tokenRequest({ grant_type: 'client_credentials', scope: 'db:connect db:write' }, auth);
    expect([scope.status, scope.body.error]).toEqual([400, 'invalid_scope']);
    expect(scope.body.error_description).toContain('db:write');
  });

  test('an oversized body is refused', async () => {
    const r = await tokenRequest({ grant_type: 'client_credentials', padding: 'x'.repeat(100_000) }, { authorization: basic(reporting.clientId, reporting.clientSecret) }).catch(() => undefined);
    if (r) expect(r.status).toBe(400); // or the connection was cut, which is also a refusal
    const ok = await tokenRequest({ grant_type: 'client_credentials' }, { authorization: basic(reporting.clientId, reporting.clientSecret) });
    expect(ok.status).toBe(200);
  });
});

describe('metadata and keys', () => {
  test('discovery documents and JWKS look like Okta', async () => {
    for (const doc of ['openid-configuration', 'oauth-authorization-server']) {
      const meta = (await (await fetch(`${dev.issuer}/.well-known/${doc}`)).json()) as Record<string, unknown>;
      expect(meta).toMatchObject({ issuer: dev.issuer, jwks_uri: dev.jwksUri, token_endpoint: dev.tokenEndpoint });
    }
    expect(dev.issuer).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/oauth2\/default$/);
    const before = dev.requestCount('v1/keys');
    const jwks = (await (await fetch(dev.jwksUri)).json()) as { keys: Record<string, unknown>[] };
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toMatchObject({ kty: 'RSA', alg: 'RS256', use: 'sig', kid: expect.any(String), n: expect.any(String), e: 'AQAB' });
    expect(jwks.keys[0]).not.toHaveProperty('d');
    expect(jwks).toEqual(dev.publicJwks());
    expect(dev.requestCount(dev.jwksUri)).toBe(before + 1);
    expect(dev.requestCount('/oauth2/default/v1/keys')).toBe(before + 1);
  });

  test('rotateKeys replaces or adds a key', async () => {
    const d = await startTestIssuer();
    const kid0 = (d.publicJwks().keys[0] as { kid: string }).kid;
    await d.rotateKeys({ keepOld: true });
    expect(d.publicJwks().keys.map((k) => (k as { kid: string }).kid)).toContain(kid0);
    await d.rotateKeys();
    expect(d.publicJwks().keys).toHaveLength(1);
    expect((d.publicJwks().keys[0] as { kid: string }).kid).not.toBe(kid0);
    await d.stop();
  });

  test('refuses to listen on a non-loopback address', async () => {
    await expect(startDevIssuer({ host: '0.0.0.0', audience: 'a', clients: TEST_CLIENTS })).rejects.toThrow(/loopback only/);
  });
});
