import type { DevIssuer } from '../../src/dev/devIssuer';
import { TokenVerifier } from '../../src/identity/verifier';
import { TokenRejectedError, type TokenRejectReason } from '../../src/identity/types';
import { expectNoTokenIn, hs256WithPublicKey, noneTokenWithSignature, oidcConfigFor, startTestIssuer, tamperPayload, unsignedToken, claimsOf } from '../helpers/issuer';
import type { OidcConfig } from '../../src/config/schema';

let dev: DevIssuer;
let verifier: TokenVerifier;
const nowSec = (): number => Math.floor(Date.now() / 1000);

beforeAll(async () => {
  dev = await startTestIssuer();
  verifier = new TokenVerifier(oidcConfigFor(dev.issuer));
});
afterAll(() => dev.stop());

async function expectRejected(token: string, reason: TokenRejectReason, v: TokenVerifier = verifier): Promise<string> {
  const err = await v.verify(token).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TokenRejectedError);
  const rejected = err as TokenRejectedError;
  expect({ reason: rejected.reason, message: rejected.message }).toEqual({ reason, message: expect.any(String) });
  expectNoTokenIn(rejected.message, token);
  // inspect() reports the same first failure without throwing.
  const report = await v.inspect(token);
  expect(report.error?.reason).toBe(reason);
  expect(report.identity).toBeUndefined();
  for (const c of report.checks) expectNoTokenIn(c.detail, token);
  return rejected.message;
}

function verifierWith(overrides: Partial<OidcConfig>): TokenVerifier {
  return new TokenVerifier(oidcConfigFor(dev.issuer, overrides));
}

describe('accepted tokens', () => {
  test('an Okta-shaped client-credentials token yields its identity', async () => {
    const token = await dev.mintToken({ clientId: 'svc-writer' });
    const claims = claimsOf(token);
    const id = await verifier.verify(token);
    expect(id).toEqual({
      sub: 'svc-writer',
      clientId: 'svc-writer',
      uid: undefined,
      groups: ['writers', 'analysts'],
      scopes: ['db:connect', 'db:write'],
      jti: claims.jti,
      issuer: dev.issuer,
      expiresAt: claims.exp,
      issuedAt: claims.iat,
    });
    expect(String(claims.jti)).toMatch(/^AT\./);
  });

  test('user token: uid, scope string, client_id fallback, aud array, typ at+jwt', async () => {
    const token = await dev.mintToken({
      header: { typ: 'at+jwt' },
      claims: { sub: 'alice@example.com', uid: '00u1', scope: 'openid db:connect', groups: ['dba'], client_id: 'cli-app', aud: ['api://other', 'api://tokengate'] },
      omit: ['scp', 'cid'],
    });
    const id = await verifier.verify(token);
    expect(id).toMatchObject({ sub: 'alice@example.com', uid: '00u1', clientId: 'cli-app', scopes: ['openid', 'db:connect'], groups: ['dba'] });
  });

  test('azp is the last client id fallback; a configured groups claim name is honoured', async () => {
    const token = await dev.mintToken({ claims: { azp: 'spa', teams: ['t1'] }, omit: ['cid'] });
    const id = await verifierWith({ groupsClaim: 'teams' }).verify(token);
    expect(id.clientId).toBe('spa');
    expect(id.groups).toEqual(['t1']);
  });

  test('an expiry within the clock skew is still accepted', async () => {
    await expect(verifier.verify(await dev.mintToken({ expiresInSec: -10, issuedAtSec: nowSec() - 300 }))).resolves.toMatchObject({ sub: 'svc-reporting' });
  });

  test('typ JWT and application/at+jwt are accepted', async () => {
    for (const typ of ['JWT', 'application/at+jwt']) {
      await expect(verifier.verify(await dev.mintToken({ header: { typ } }))).resolves.toMatchObject({ sub: 'svc-reporting' });
    }
  });
});

describe('rejections', () => {
  test('expired', async () => {
    const token = await dev.mintToken({ expiresInSec: -120, issuedAtSec: nowSec() - 420 });
    const exp = claimsOf(token).exp as number;
    const iso = new Date(exp * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const msg = await expectRejected(token, 'expired');
    expect(msg).toBe(`the access token expired at ${iso} (clock skew allowed: 30s); fetch a new token from your issuer and reconnect`);
  });

  test('not yet valid', async () => {
    const msg = await expectRejected(await dev.mintToken({ notBeforeSec: nowSec() + 600 }), 'not_yet_valid');
    expect(msg).toMatch(/not valid before \d{4}-\d\d-\d\dT/);
  });

  test('wrong issuer', async () => {
    const msg = await expectRejected(await dev.mintToken({ claims: { iss: 'https://evil.example.com/oauth2/default' } }), 'bad_issuer');
    expect(msg).toContain('https://evil.example.com/oauth2/default');
    expect(msg).toContain(`accepts tokens only from ${dev.issuer}`);
  });

  test('an issuer that differs only in a trailing slash: the config must change, not the token', async () => {
    const msg = await expectRejected(await dev.mintToken({ claims: { iss: `${dev.issuer}/` } }), 'bad_issuer');
    expect(msg).toContain('differ only in the trailing slash');
    expect(msg).toContain(`must set oidc.issuer to ${dev.issuer}/ exactly`);
    expect(msg).not.toMatch(/request a token/);
  });

  test('wrong audience', async () => {
    const msg = await expectRejected(await dev.mintToken({ claims: { aud: 'api://other' } }), 'bad_audience');
    expect(msg).toBe(
      'token audience [api://other] does not include the expected audience api://tokengate; request a token from the authorization server whose audience is api://tokengate',
    );
  });

  test('alg none (with an empty and with a bogus signature)', async () => {
    const claims = claimsOf(await dev.mintToken());
    for (const token of [unsignedToken(claims), noneTokenWithSignature(claims)]) {
      expect(await expectRejected(token, 'algorithm_not_allowed')).toContain('unsigned');
    }
  });

  test('HS256 signed with the IdP public key, even when the config lists HS256', async () => {
    const token = await hs256WithPublicKey(dev, claimsOf(await dev.mintToken()));
    await expectRejected(token, 'algorithm_not_allowed');
    await expectRejected(token, 'algorithm_not_allowed', verifierWith({ algorithms: ['RS256', 'HS256'] }));
  });

  test('an algorithm outside the allowlist', async () => {
    await expectRejected(await dev.mintToken(), 'algorithm_not_allowed', verifierWith({ algorithms: ['ES256'] }));
  });

  test('a config that allows only HMAC or none is refused at construction', () => {
    expect(() => verifierWith({ algorithms: ['HS256', 'none'] })).toThrow(/allows no asymmetric algorithm/);
  });

  test('unknown kid', async () => {
    const msg = await expectRejected(await dev.mintToken({ kid: 'not-published' }), 'unknown_key');
    expect(msg).toContain('"not-published"');
  });

  test('tampered payload', async () => {
    const token = tamperPayload(await dev.mintToken(), { scp: ['db:connect', 'db:admin'] });
    await expectRejected(token, 'bad_signature');
  });

  test('lifetime too long, and no iat when a maximum lifetime is set', async () => {
    const v = verifierWith({ maxTokenLifetimeMs: 3_600_000 });
    expect(await expectRejected(await dev.mintToken({ expiresInSec: 7200 }), 'lifetime_too_long', v)).toContain('7200s');
    await expect(v.verify(await dev.mintToken({ expiresInSec: 3600 }))).resolves.toBeDefined();
    expect(await expectRejected(await dev.mintToken({ omit: ['iat'] }), 'missing_claim', v)).toContain('"iat"');
  });

  test('missing scope lists what is missing and what the token has', async () => {
    const v = verifierWith({ requiredScopes: ['db:connect', 'db:admin', 'db:audit'] });
    const msg = await expectRejected(await dev.mintToken(), 'missing_scope', v);
    expect(msg).toContain('db:admin, db:audit');
    expect(msg).toContain('it has: db:connect db:read');
    await expectRejected(await dev.mintToken({ omit: ['scp'] }), 'missing_scope');
  });

  test('missing exp', async () => {
    expect(await expectRejected(await dev.mintToken({ omit: ['exp'] }), 'missing_claim')).toContain('"exp"');
  });

  test('non-numeric exp', async () => {
    expect(await expectRejected(await dev.mintToken({ claims: { exp: 'tomorrow' } }), 'invalid_claim')).toMatch(/"exp" claim is a string .* must be a number/);
  });

  test.each([
    ['groups as a string', { groups: 'db-admins' }, /"groups" claim is a string \("db-admins"\), but it must be an array of strings/],
    ['groups as an object', { groups: { admin: true } }, /"groups" claim is an object .* must be an array of strings/],
    ['groups with a non-string member', { groups: ['a', 1] }, /"groups" claim is an array with non-string values/],
    ['scp as a number', { scp: 7 }, /"scp" claim is a number \(7\), but it must be a string or an array of strings/],
    ['cid as a number', { cid: 42 }, /"cid" claim is a number/],
    ['sub as an object', { sub: { id: 'x' } }, /"sub" claim is an object/],
    ['aud as a number', { aud: 1 }, /"aud" claim is a number/],
  ])('a claim of the wrong type: %s', async (_name, claims, text) => {
    expect(await expectRejected(await dev.mintToken({ claims }), 'invalid_claim')).toMatch(text);
  });

  test('the configured groups claim is the one type-checked', async () => {
    expect(await expectRejected(await dev.mintToken({ claims: { teams: 'x' } }), 'invalid_claim', verifierWith({ groupsClaim: 'teams' }))).toMatch(/"teams" claim/);
  });

  test('a sender-constrained token (cnf) is refused, saying why', async () => {
    const msg = await expectRejected(await dev.mintToken({ claims: { cnf: { jkt: 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs' } } }), 'sender_constrained');
    expect(msg).toMatch(/cnf jkt.*bound to a key the agent holds.*must not be used as a bearer password/);
  });

  test.each([
    ['jku', { jku: 'https://attacker.example/jwks' }, 'key_in_header', /"jku".*never fetches a URL from a token/],
    ['x5u', { x5u: 'https://attacker.example/cert.pem' }, 'key_in_header', /"x5u"/],
    ['jwk', { jwk: { kty: 'RSA', n: 'AQAB', e: 'AQAB' } }, 'key_in_header', /"jwk".*only from the JWKS/],
    ['crit', { crit: ['http://example.com/ext'], 'http://example.com/ext': true }, 'unsupported_critical_header', /crit .*does not implement/],
  ] as const)('a header with %s is refused before any key lookup', async (_name, header, reason, text) => {
    const v = verifierWith({});
    const token = await dev.mintToken({ header, crit: { 'http://example.com/ext': true } });
    await expect(v.verify(token)).rejects.toMatchObject({ reason });
    expect(v.stats.signatureChecks).toBe(0);
    expect(await expectRejected(token, reason, v)).toMatch(text);
  });

  test('iat in the future', async () => {
    await expectRejected(await dev.mintToken({ issuedAtSec: nowSec() + 600, expiresInSec: 900 }), 'issued_in_future');
  });

  test('missing sub', async () => {
    await expectRejected(await dev.mintToken({ omit: ['sub'] }), 'missing_claim');
  });

  test('missing aud and missing iss', async () => {
    await expectRejected(await dev.mintToken({ omit: ['aud'] }), 'missing_claim');
    await expectRejected(await dev.mintToken({ omit: ['iss'] }), 'missing_claim');
  });

  test('a typ that is not an access token', async () => {
    await expectRejected(await dev.mintToken({ header: { typ: 'id_token+jwt' } }), 'malformed');
  });

  test('malformed inputs: garbage, JWE, oversized, bad base64, non-object payload', async () => {
    const good = await dev.mintToken();
    const [h, , s] = good.split('.');
    const inputs = [
      '',
      'hunter2',
      'a.b.c.d.e',
      `${h}.!!!.${s}`,
      `${h}.${Buffer.from('[1,2]').toString('base64url')}.${s}`,
      `${h}.${Buffer.from('not json').toString('base64url')}.${s}`,
    ];
    for (const token of inputs) await expectRejected(token, 'malformed');
    expect(await expectRejected('a.b.c.d.e', 'malformed')).toContain('JWE');
    expect(await expectRejected(`${h}.${'A'.repeat(17 * 1024)}.${s}`, 'token_too_large')).toMatch(/too large for an access token/);
  });

  test('failures are not cached; each re-verify re-checks', async () => {
    const v = verifierWith({});
    const token = tamperPayload(await dev.mintToken(), { sub: 'root' });
    await expect(v.verify(token)).rejects.toBeInstanceOf(TokenRejectedError);
    await expect(v.verify(token)).rejects.toBeInstanceOf(TokenRejectedError);
    expect(v.stats.signatureChecks).toBe(2);
  });
});

describe('inspect', () => {
  test('lists every check for a good token and returns the identity', async () => {
    const token = await dev.mintToken();
    const report = await verifier.inspect(token);
    expect(report.error).toBeUndefined();
    expect(report.identity?.sub).toBe('svc-reporting');
    expect(report.header).toEqual({ alg: 'RS256', kid: expect.any(String), typ: undefined });
    expect(report.checks.map((c) => c.name)).toEqual(['format', 'algorithm', 'type', 'header', 'issuer', 'signature', 'claim-types', 'sender-constraint', 'audience', 'expiry', 'not-before', 'issued-at', 'lifetime', 'subject', 'scopes']);
    expect(report.checks.every((c) => c.ok)).toBe(true);
  });

  test('reports all failures of a bad token, the first one as the error, and never throws', async () => {
    const token = await dev.mintToken({ expiresInSec: -3600, issuedAtSec: nowSec() - 4000, claims: { aud: 'api://other' } });
    const report = await verifier.inspect(token);
    expect(report.error?.reason).toBe('bad_audience');
    const failed = report.checks.filter((c) => !c.ok).map((c) => c.name);
    expect(failed).toEqual(['audience', 'expiry']);
    expect(report.claims?.aud).toBe('api://other');
    const garbage = await verifier.inspect('not a token');
    expect(garbage).toMatchObject({ claims: null, error: { reason: 'malformed' } });
  });
});
