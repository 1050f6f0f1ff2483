/**
 * The token client on the wire (what `tokengate token` sends for each client authentication
 * method, recorded by a plain HTTP server) and the development issuer's checks of
 * private_key_jwt assertions (signature, aud, lifetime, replay) and its expired-token endpoint.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createPublicKey } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, SignJWT } from 'jose';
import {
  clientAssertion,
  parsePrivateKey,
  requestClientCredentialsToken,
  TokenRequestError,
  type ClientSigningKey,
} from '../../src/cli/clientCredentials';
import { startDevIssuer, type DevIssuer } from '../../src/dev/devIssuer';
import { claimsOf } from '../helpers/issuer';

interface Recorded {
  headers: http.IncomingHttpHeaders;
  form: URLSearchParams;
}

let recorder: http.Server;
let recorderUrl: string;
const recorded: Recorded[] = [];
let reply: { status: number; body: string } = { status: 200, body: '{"access_token":"a.b.c","token_type":"Bearer","expires_in":300}' };

let dev: DevIssuer;
let key: ClientSigningKey;

beforeAll(async () => {
  recorder = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      recorded.push({ headers: req.headers, form: new URLSearchParams(body) });
      res.writeHead(reply.status, { 'content-type': 'application/json' });
      res.end(reply.body);
    });
  });
  await new Promise<void>((r) => recorder.listen(0, '127.0.0.1', () => r()));
  recorderUrl = `http://127.0.0.1:${(recorder.address() as AddressInfo).port}/oauth2/default/v1/token`;

  const pair = await generateKeyPair('RS256', { extractable: true });
  const privateJwk = { ...(await exportJWK(pair.privateKey)), kid: 'k1' };
  key = parsePrivateKey(JSON.stringify(privateJwk), 'test key');
  dev = await startDevIssuer({
    audience: 'api://tokengate',
    clients: [
      { clientId: 'svc-jwt', jwks: [{ ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'RS256' }], groups: ['g'], scopes: ['db.connect'] },
      { clientId: 'svc-secret', clientSecret: 's3cret-value', groups: ['g'], scopes: ['db.connect'] },
    ],
    expiredTokenEndpoint: true,
  });
});

afterAll(async () => {
  await new Promise((r) => recorder.close(r));
  await dev.stop();
});

beforeEach(() => {
  recorded.length = 0;
  reply = { status: 200, body: '{"access_token":"a.b.c","token_type":"Bearer","expires_in":300}' };
});

const base = { tokenEndpoint: '', clientId: 'svc id+1', scopes: ['db.connect', 'db.read'], timeoutMs: 5000 };

describe('what goes on the wire', () => {
  test('client_secret_basic: form-encoded id and secret in the Authorization header, not the body', async () => {
    const issued = await requestClientCredentialsToken({ ...base, tokenEndpoint: recorderUrl, auth: { method: 'client_secret_basic', clientSecret: 'p@ss word:+' } });
    expect(issued.accessToken).toBe('a.b.c');
    expect(issued.expiresAt).toBeGreaterThan(Date.now() / 1000 + 290);
    const [req] = recorded;
    const decoded = Buffer.from(String(req.headers.authorization).replace(/^Basic /, ''), 'base64').toString();
    expect(decoded).toBe('svc+id%2B1:p%40ss+word%3A%2B');
    expect(Object.fromEntries(req.form)).toEqual({ grant_type: 'client_credentials', scope: 'db.connect db.read' });
  });

  test('client_secret_post: id and secret in the body, no Authorization header', async () => {
    await requestClientCredentialsToken({ ...base, tokenEndpoint: recorderUrl, auth: { method: 'client_secret_post', clientSecret: 'pw' }, extraParams: { resource: 'api://x' } });
    const [req] = recorded;
    expect(req.headers.authorization).toBeUndefined();
    expect(Object.fromEntries(req.form)).toEqual({ grant_type: 'client_credentials', scope: 'db.connect db.read', resource: 'api://x', client_id: 'svc id+1', client_secret: 'pw' });
  });

  test('private_key_jwt: an assertion with iss = sub = client id, aud = token URL, exp, jti', async () => {
    await requestClientCredentialsToken({ ...base, tokenEndpoint: recorderUrl, auth: { method: 'private_key_jwt', key } });
    const [req] = recorded;
    expect(req.headers.authorization).toBeUndefined();
    expect(req.form.get('client_assertion_type')).toBe('urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
    expect(req.form.get('client_secret')).toBeNull();
    const assertion = req.form.get('client_assertion')!;
    expect(decodeProtectedHeader(assertion)).toEqual({ alg: 'RS256', kid: 'k1', typ: 'JWT' });
    const claims = decodeJwt(assertion);
    expect(claims).toMatchObject({ iss: 'svc id+1', sub: 'svc id+1', aud: recorderUrl, jti: expect.any(String) });
    expect(claims.exp! - claims.iat!).toBe(300);
  });

  test('IdP errors keep status, error and description, with the secret redacted if echoed', async () => {
    reply = { status: 401, body: '{"error":"invalid_client","error_description":"bad secret p@ss-echoed"}' };
    const err = await requestClientCredentialsToken({ ...base, tokenEndpoint: recorderUrl, auth: { method: 'client_secret_basic', clientSecret: 'p@ss-echoed' } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TokenRequestError);
    expect(err).toMatchObject({ status: 401, error: 'invalid_client', errorDescription: 'bad secret [redacted]' });
    expect((err as Error).message).not.toContain('p@ss-echoed');

    reply = { status: 403, body: '{"errorCode":"E0000015","errorSummary":"You do not have permission"}' };
    await expect(requestClientCredentialsToken({ ...base, tokenEndpoint: recorderUrl, auth: { method: 'client_secret_basic', clientSecret: 'x' } }))
      .rejects.toThrow('answered HTTP 403: E0000015: You do not have permission');

    reply = { status: 200, body: '{"token_type":"Bearer"}' };
    await expect(requestClientCredentialsToken({ ...base, tokenEndpoint: recorderUrl, auth: { method: 'client_secret_basic', clientSecret: 'x' } }))
      .rejects.toThrow('without an access_token');
  });

  test('refuses to send credentials over http to a non-loopback host', async () => {
    await expect(requestClientCredentialsToken({ ...base, tokenEndpoint: 'http://idp.example.com/oauth2/default/v1/token', auth: { method: 'client_secret_basic', clientSecret: 'x' } }))
      .rejects.toThrow(/http:\/\/ on a non-loopback host/);
    expect(recorded).toHaveLength(0);
  });
});

describe('private keys', () => {
  test('PEM and JWK, RSA and EC; public keys and junk are refused with a reason', async () => {
    const ec = await generateKeyPair('ES384', { extractable: true });
    const ecKey = parsePrivateKey(JSON.stringify(await exportJWK(ec.privateKey)), 'ec.json', 'given-kid');
    expect([ecKey.algorithm, ecKey.keyId]).toEqual(['ES384', 'given-kid']);
    const pem = key.key.export({ format: 'pem', type: 'pkcs1' }).toString();
    expect(parsePrivateKey(pem, 'rsa.pem')).toMatchObject({ algorithm: 'RS256', keyId: undefined });
    const publicJwk = JSON.stringify(createPublicKey(key.key).export({ format: 'jwk' }));
    expect(() => parsePrivateKey(publicJwk, 'pub.json')).toThrow('pub.json is a public JWK');
    expect(() => parsePrivateKey('hello', 'x.txt')).toThrow('x.txt is neither a PEM private key');
    expect(() => parsePrivateKey('{nope', 'y.json')).toThrow('not valid JSON');
  });
});

describe('the development issuer checks client assertions like Okta', () => {
  const post = async (form: Record<string, string>, url = dev.tokenEndpoint): Promise<{ status: number; body: Record<string, unknown> }> => {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form).toString() });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const withAssertion = (assertion: string): Record<string, string> => ({
    grant_type: 'client_credentials', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion,
  });

  test('a good assertion gets a token; the same assertion again is a replay', async () => {
    const assertion = await clientAssertion('svc-jwt', dev.tokenEndpoint, key);
    const ok = await post(withAssertion(assertion));
    expect(ok.status).toBe(200);
    expect(claimsOf(ok.body.access_token as string)).toMatchObject({ cid: 'svc-jwt', sub: 'svc-jwt', scp: ['db.connect'] });
    const replay = await post(withAssertion(assertion));
    expect(replay).toEqual({ status: 401, body: { error: 'invalid_client', error_description: 'The client_assertion jti has already been used.' } });
  });

  test('wrong audience, too long a lifetime, a secret-only client and a foreign client_id are refused', async () => {
    const wrongAud = await post(withAssertion(await clientAssertion('svc-jwt', `${dev.issuer}/v1/other`, key)));
    expect(wrongAud.status).toBe(401);
    expect(wrongAud.body.error_description).toMatch(/unexpected "aud" claim value/);

    const now = Math.floor(Date.now() / 1000);
    const long = await new SignJWT({}).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setIssuer('svc-jwt').setSubject('svc-jwt')
      .setAudience(dev.tokenEndpoint).setIssuedAt(now).setExpirationTime(now + 7200).setJti('long-1').sign(key.key);
    expect((await post(withAssertion(long))).body.error_description).toMatch(/more than 3600 seconds/);

    expect((await post(withAssertion(await clientAssertion('svc-secret', dev.tokenEndpoint, key)))).body.error_description).toBe('The client is not configured for private_key_jwt.');
    const mismatch = await post({ ...withAssertion(await clientAssertion('svc-jwt', dev.tokenEndpoint, key)), client_id: 'svc-secret' });
    expect(mismatch.body.error_description).toBe('The client_assertion iss does not name the client.');
    // A key-only client cannot fall back to a secret.
    expect((await post({ grant_type: 'client_credentials', client_id: 'svc-jwt', client_secret: 'anything' })).status).toBe(401);
  });

  test('the demo-only endpoint issues an already expired token, after the same client authentication', async () => {
    const url = dev.expiredTokenEndpoint!;
    expect(url).toBe(`${dev.issuer}/v1/demo/expired-token`);
    expect((await post({ grant_type: 'client_credentials', client_id: 'svc-secret', client_secret: 'wrong' }, url)).status).toBe(401);
    const r = await post({ grant_type: 'client_credentials', client_id: 'svc-secret', client_secret: 's3cret-value' }, url);
    expect(r.status).toBe(200);
    const claims = claimsOf(r.body.access_token as string);
    expect(claims.exp as number).toBeLessThan(Date.now() / 1000 - 30);
    expect((claims.exp as number) - (claims.iat as number)).toBe(300);

    const plain = await startDevIssuer({ audience: 'a', clients: [{ clientId: 'c', clientSecret: 's', groups: [], scopes: ['x'] }] });
    expect(plain.expiredTokenEndpoint).toBeUndefined();
    expect((await post({ grant_type: 'client_credentials', client_id: 'c', client_secret: 's' }, `${plain.issuer}/v1/demo/expired-token`)).status).toBe(404);
    await plain.stop();
  });
});
