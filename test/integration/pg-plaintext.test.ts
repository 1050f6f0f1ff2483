import { startGatewayHarness, type PgHarness } from './harness';
import { psql } from './clients';
import { makeTestCertificates } from '../helpers/tlsCert';

/**
 * With allowPlaintextFromLoopback: false, even a loopback client must use TLS: the gateway
 * refuses before it asks for the token, so the token never crosses the wire in clear.
 */
let h: PgHarness;
const certs = makeTestCertificates();

beforeAll(async () => {
  h = await startGatewayHarness({ protocol: 'postgres', allowPlaintextFromLoopback: false, tls: { certFile: certs.certFile, keyFile: certs.keyFile } });
}, 120000);

afterAll(async () => {
  await h?.stop();
  certs.cleanup();
});

test('plaintext is refused with a message that says to use TLS', async () => {
  const r = await psql(h, await h.token(), 'select 1', { sslmode: 'disable' });
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/only over TLS.*sslmode=require/);
  await h.audit.waitFor((e) => e.event === 'connection_rejected' && e.reason === 'plaintext_refused');
});

test('the same client over TLS is admitted', async () => {
  const r = await psql(h, await h.token(), 'select ssl from pg_stat_ssl where pid = pg_backend_pid()', { sslmode: 'require' });
  expect(r.stderr).toBe('');
  // The upstream leg is plaintext in this test (tls: disable); the client leg was TLS.
  expect(r.stdout.trim()).toBe('f');
  await h.audit.waitFor((e) => e.event === 'connection_accepted' && e.tls === true);
});
