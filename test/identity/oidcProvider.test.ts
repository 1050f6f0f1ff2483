/**
 * Interop with a third-party issuer: oidc-provider configured like an Okta custom
 * authorization server (protocol-facts §7). It is ESM, so it runs in a child process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { TokenVerifier } from '../../src/identity/verifier';
import { TokenRejectedError } from '../../src/identity/types';
import { oidcConfigFor, tamperPayload } from '../helpers/issuer';

let child: ChildProcess;
let issuer: string;

beforeAll(async () => {
  child = spawn(process.execPath, [path.join(__dirname, 'fixtures', 'okta-like-provider.mjs')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  issuer = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`oidc-provider did not start: ${stderr}`)), 20_000);
    child.once('exit', (code) => reject(new Error(`oidc-provider exited with ${code}: ${stderr}`)));
    createInterface({ input: child.stdout! }).once('line', (line) => {
      clearTimeout(timer);
      resolve((JSON.parse(line) as { issuer: string }).issuer);
    });
  });
});

afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
});

async function clientCredentials(secret: string): Promise<Response> {
  return fetch(`${issuer}/v1/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`svc-reporting:${secret}`).toString('base64')}`,
    },
    body: 'grant_type=client_credentials&scope=db%3Aconnect',
  });
}

test('a client-credentials token from oidc-provider verifies via discovery and its JWKS', async () => {
  const res = await clientCredentials('dev-secret');
  expect(res.status).toBe(200);
  const { access_token: token } = (await res.json()) as { access_token: string };
  const v = new TokenVerifier(oidcConfigFor(issuer, { audience: ['api://default'], maxTokenLifetimeMs: 24 * 3600_000 }));
  const id = await v.verify(token);
  expect(id).toMatchObject({ sub: 'svc-reporting', clientId: 'svc-reporting', scopes: ['db:connect'], groups: ['analysts'], issuer });
  const report = await v.inspect(token);
  expect(report.header).toMatchObject({ alg: 'RS256', typ: 'at+jwt', kid: 'okta-like-1' });

  const wrongAudience = new TokenVerifier(oidcConfigFor(issuer));
  await expect(wrongAudience.verify(token)).rejects.toMatchObject({ reason: 'bad_audience' });
  const forged = tamperPayload(token, { groups: ['dba'] });
  const err = await v.verify(forged).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(TokenRejectedError);
  expect((err as TokenRejectedError).reason).toBe('bad_signature');
});

test('oidc-provider refuses a wrong client secret', async () => {
  const res = await clientCredentials('wrong');
  expect(res.status).toBe(401);
  expect(((await res.json()) as { error: string }).error).toBe('invalid_client');
});
