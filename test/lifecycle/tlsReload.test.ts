import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load';
import { startGateway, type Gateway } from '../../src/core/gateway';
import { log } from '../../src/log';
import { MemoryTransport } from '../helpers/memoryTransport';
import { makeTestCertificates } from '../helpers/tlsCert';

/**
 * A reload reads the TLS certificate and key again even when their paths did not change (a
 * renewal replaces the files in place); files that cannot be loaded keep the certificate in use.
 * The served certificate is read with `openssl s_client -starttls postgres`.
 */

const first = makeTestCertificates();
const second = makeTestCertificates();
let dir: string;
let gateway: Gateway;

/** The certificate the gateway serves (asynchronously: the gateway runs in this process). */
function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('openssl', ['s_client', '-starttls', 'postgres', '-connect', `127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.on('close', () => {
      clearTimeout(timer);
      if (!out.includes('BEGIN CERTIFICATE')) return reject(new Error(`openssl s_client got no certificate: ${err}`));
      resolve(fingerprint(out));
    });
  });
}

function fingerprint(pem: string): string {
  return execFileSync('openssl', ['x509', '-noout', '-fingerprint', '-sha256'], { input: pem, encoding: 'utf8' }).trim();
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tokengate-lifetest-tls-'));
  copyFileSync(first.certFile, join(dir, 'server.crt'));
  copyFileSync(first.keyFile, join(dir, 'server.key'));
  const file = join(dir, 'tokengate.yaml');
  writeFileSync(file, `
listen: { postgres: 127.0.0.1:0 }
tls: { certFile: server.crt, keyFile: server.key }
oidc: { issuer: http://127.0.0.1:9/oauth2/default, audience: api://tokengate, devIssuer: true, fetchTimeout: 1s }
upstreams:
  app-pg:
    protocol: postgres
    host: 127.0.0.1
    tls: disable
    databases: { app: app }
    roles:
      reader: { user: lifetest_nobody, password: \${LIFETEST_UNUSED} }
grants:
  - { name: everyone, match: { groups: [db-readers] }, upstream: app-pg, databases: [app], roles: [reader] }
`);
  process.env.LIFETEST_UNUSED = 'lifetest-unused-password';
  jest.spyOn(log, 'warn').mockImplementation(() => log);
  gateway = await startGateway(loadConfig(file), { auditTransport: new MemoryTransport() });
});

afterAll(async () => {
  await gateway?.close();
  first.cleanup();
  second.cleanup();
  rmSync(dir, { recursive: true, force: true });
  jest.restoreAllMocks();
});

test('new certificate files under the same names are served after reload(); unreadable ones keep the current certificate', async () => {
  const port = gateway.postgres!.port;
  expect(await servedFingerprint(port)).toBe(fingerprint(execFileSync('cat', [first.certFile], { encoding: 'utf8' })));

  copyFileSync(second.certFile, join(dir, 'server.crt'));
  copyFileSync(second.keyFile, join(dir, 'server.key'));
  const outcome = await gateway.reload();
  expect(outcome).toEqual({ ok: true, changed: [] });
  const renewed = fingerprint(execFileSync('cat', [second.certFile], { encoding: 'utf8' }));
  expect(await servedFingerprint(port)).toBe(renewed);

  const errors = jest.spyOn(log, 'error').mockImplementation(() => log);
  writeFileSync(join(dir, 'server.key'), 'not a key');
  await gateway.reload();
  expect(String(errors.mock.calls[0]?.[0])).toMatch(/cannot load the new TLS certificate .*clients keep getting the previous one/);
  expect(await servedFingerprint(port)).toBe(renewed);
});
