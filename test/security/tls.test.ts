/**
 * Client TLS on both listeners (issue 15, section 5): TLS 1.2 and 1.3 are accepted, TLS 1.1 is
 * refused by the gateway (the client is allowed to offer it), and TLS 1.2 only with the AEAD
 * suites of src/net/tlsContext.ts. openssl s_client speaks each protocol's STARTTLS
 * (SSLRequest); the drivers then run a whole session over TLS 1.2 and over 1.3.
 */
import fs from 'node:fs';
import mysql from 'mysql2/promise';
import { Client } from 'pg';
import { CLIENT_TLS12_CIPHERS } from '../../src/net/tlsContext';
import { startGatewayHarness, type Harness, type Protocol } from '../integration/harness';
import { run } from '../integration/clients';
import { makeTestCertificates } from '../helpers/tlsCert';

const certs = makeTestCertificates();
afterAll(() => certs.cleanup());

/** openssl s_client through the protocol's STARTTLS; `args` pick the version and ciphers. */
async function sClient(protocol: Protocol, port: number, args: string[]): Promise<string> {
  const r = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-starttls', protocol, '-servername', 'localhost', '-CAfile', certs.caFile, ...args], {}, '', 20_000);
  return `${r.stdout}\n${r.stderr}`;
}

async function session(h: Harness, maxVersion: 'TLSv1.2' | 'TLSv1.3'): Promise<string> {
  const ssl = { ca: fs.readFileSync(certs.caFile), servername: 'localhost', minVersion: maxVersion, maxVersion };
  const token = await h.token();
  if (h.protocol === 'postgres') {
    const c = new Client({ host: '127.0.0.1', port: h.port, user: 'reader', database: 'app', password: token, ssl });
    await c.connect();
    try {
      return (await c.query<{ one: number }>('select 1 as one')).rows[0].one === 1 ? 'ok' : 'wrong result';
    } finally {
      await c.end();
    }
  }
  const c = await mysql.createConnection({ host: '127.0.0.1', port: h.port, user: 'reader', database: 'app', password: token, ssl, enableCleartextPlugin: true });
  try {
    const [rows] = await c.query<mysql.RowDataPacket[]>('SELECT 1 AS one');
    return rows[0].one === 1 ? 'ok' : 'wrong result';
  } finally {
    await c.end();
  }
}

describe.each(['postgres', 'mysql'] as const)('%s listener', (protocol) => {
  let h: Harness;
  beforeAll(async () => {
    const tls = { certFile: certs.certFile, keyFile: certs.keyFile };
    // No plaintext even from loopback: the token can only arrive over TLS.
    h = protocol === 'postgres'
      ? await startGatewayHarness({ protocol: 'postgres', tls, allowPlaintextFromLoopback: false })
      : await startGatewayHarness({ protocol: 'mysql', tls, allowPlaintextFromLoopback: false });
  }, 120_000);
  afterAll(() => h?.stop());

  test('a TLS 1.1 client is refused by the gateway', async () => {
    // SECLEVEL=0 lets this OpenSSL offer TLS 1.1 at all, so the refusal is the server's.
    const out = await sClient(protocol, h.port, ['-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0']);
    expect(out).toMatch(/alert protocol version/);
    expect(out).toMatch(/New, \(NONE\), Cipher is \(NONE\)/);
  });

  test.each([['-tls1_2', 'TLSv1.2'], ['-tls1_3', 'TLSv1.3']])('%s is accepted', async (flag, version) => {
    const out = await sClient(protocol, h.port, [flag]);
    expect(out).toMatch(new RegExp(`New, ${version.replace('.', '\\.')}, Cipher is`));
    expect(out).toMatch(/Verify return code: 0 \(ok\)/);
  });

  test('TLS 1.2 offers only forward-secret AEAD suites: a CBC or RSA-key-exchange client is refused', async () => {
    for (const cipher of ['ECDHE-RSA-AES128-SHA256', 'AES128-GCM-SHA256', 'ECDHE-RSA-AES256-SHA']) {
      expect(CLIENT_TLS12_CIPHERS).not.toContain(cipher);
      expect(await sClient(protocol, h.port, ['-tls1_2', '-cipher', `${cipher}@SECLEVEL=0`])).toMatch(/alert handshake failure/);
    }
    expect(await sClient(protocol, h.port, ['-tls1_2', '-cipher', 'ECDHE-RSA-AES256-GCM-SHA384'])).toMatch(/Cipher is ECDHE-RSA-AES256-GCM-SHA384/);
  });

  test.each(['TLSv1.2', 'TLSv1.3'] as const)('a whole session over %s with the stock driver', async (version) => {
    expect(await session(h, version)).toBe('ok');
    await h.audit.waitFor((e) => e.event === 'connection_accepted' && e.tls === true);
  });
});
