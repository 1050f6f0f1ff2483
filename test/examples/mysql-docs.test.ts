/**
 * docs/grants-mysql.md's TLS commands for the mariadb CLI, run as written against a gateway with
 * a certificate (only the host, port and CA file are this machine's): --ssl-verify-server-cert
 * really uses TLS, and the `status | grep SSL` check the page gives shows it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startGatewayHarness, type MysqlHarness } from '../integration/harness';
import { makeTestCertificates } from '../helpers/tlsCert';
import { ROOT, runCommand } from '../demo/cli';

let h: MysqlHarness;
const certs = makeTestCertificates();
beforeAll(async () => {
  h = (await startGatewayHarness({ protocol: 'mysql', tls: { certFile: certs.certFile, keyFile: certs.keyFile } })) as MysqlHarness;
}, 60_000);
afterAll(async () => {
  await h?.stop();
  certs.cleanup();
});

function tlsBlock(): string[] {
  const doc = readFileSync(join(ROOT, 'docs/grants-mysql.md'), 'utf8');
  const block = [...doc.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1]).find((b) => b.includes('--ssl-verify-server-cert'))!;
  return block.split('\n').map((l) => l.replace(/\s+#.*$/, '')).filter(Boolean)
    .map((l) => l.replace('tokengate.internal', '127.0.0.1').replace('-P 6033', `-P ${h.port}`).replace('/etc/ssl/corp-ca.pem', certs.caFile));
}

test('the documented command uses TLS with a verified certificate, and the status check shows it', async () => {
  const [exportLine, connect, check] = tlsBlock();
  expect(exportLine).toBe('export MYSQL_PWD="$TOKEN"');
  const env = { TOKEN: await h.token(), MYSQL_PWD: '' };
  const sh = (script: string): ReturnType<typeof runCommand> => runCommand('bash', ['-c', `set -o pipefail\n${exportLine}\n${script}`], { env });
  // --no-defaults only keeps this machine's option files out.
  const cli = (line: string): string => line.replace('mariadb ', 'mariadb --no-defaults ');
  const r = await sh(`${cli(connect)} -e 'select current_user()'`);
  expect([r.code, r.stderr]).toEqual([0, '']);
  const status = await sh(check.replace('mariadb ...', cli(connect)));
  expect([status.code, status.stderr]).toEqual([0, '']);
  expect(status.stdout).toMatch(/^SSL:\s+Cipher in use is TLS_AES_256_GCM_SHA384/m);
  await h.audit.waitFor((e) => e.event === 'connection_accepted' && e.tls === true);
  // A certificate from another CA: the CLI refuses rather than falling back to plaintext.
  const other = makeTestCertificates();
  try {
    const refused = await sh(`${cli(connect.replace(certs.caFile, other.caFile))} -e 'select 1'`);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/SSL|certificate/i);
  } finally {
    other.cleanup();
  }
}, 60_000);
