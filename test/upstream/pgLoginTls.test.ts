import { TLSSocket } from 'node:tls';
import { serialize } from 'pg-protocol';
import { Secret } from '../../src/config/secret';
import { connectPgUpstream, PgLoginOptions, UpstreamLoginError } from '../../src/postgres/login';
import { PgServerConnection } from '../../src/postgres/serverConnection';
import { PgCluster, startPgCluster } from '../helpers/pgCluster';
import { waitFor } from '../helpers/waitFor';

let pg: PgCluster;
const open: PgServerConnection[] = [];

beforeAll(async () => {
  pg = await startPgCluster({ ssl: true });
});
afterAll(async () => {
  for (const c of open) c.close();
  await pg?.stop();
});

function opts(over: Partial<PgLoginOptions>): PgLoginOptions {
  return {
    host: pg.host, port: pg.port, tls: 'require', user: 'tg_scram', password: new Secret(pg.passwords.tg_scram, 'test'),
    database: 'app', parameters: {}, connectTimeoutMs: 5000, ...over,
  };
}

async function login(o: PgLoginOptions): Promise<PgServerConnection> {
  const c = await connectPgUpstream(o);
  open.push(c);
  return c;
}

async function serverSaysSsl(c: PgServerConnection): Promise<string> {
  return pg.psql(`select ssl from pg_stat_ssl where pid = ${c.processId}`);
}

describe('upstream TLS modes', () => {
  test('require: TLS without certificate checks (IP host, cert names localhost)', async () => {
    const c = await login(opts({ tls: 'require' }));
    expect(c.socket).toBeInstanceOf(TLSSocket);
    expect(await serverSaysSsl(c)).toBe('t');
    expect((await c.query('select 1', 2000)).rows).toEqual([['1']]);
  });

  test('prefer: uses TLS when the server offers it', async () => {
    const c = await login(opts({ tls: 'prefer' }));
    expect(c.socket).toBeInstanceOf(TLSSocket);
    expect(await serverSaysSsl(c)).toBe('t');
  });

  test('disable: plaintext even though the server has ssl', async () => {
    const c = await login(opts({ tls: 'disable' }));
    expect(c.socket).not.toBeInstanceOf(TLSSocket);
    expect(await serverSaysSsl(c)).toBe('f');
  });

  test('verify-full: accepts the right CA and host name', async () => {
    const c = await login(opts({ tls: 'verify-full', host: 'localhost', caFile: pg.caFile }));
    expect((c.socket as TLSSocket).authorized).toBe(true);
    expect(await serverSaysSsl(c)).toBe('t');
  });

  test('verify-full: refuses a certificate from another CA', async () => {
    const err = (await connectPgUpstream(opts({ tls: 'verify-full', host: 'localhost', caFile: pg.otherCaFile })).catch((e: unknown) => e)) as UpstreamLoginError;
    expect(err).toBeInstanceOf(UpstreamLoginError);
    expect(err.message).toMatch(/TLS handshake with upstream .* failed: .*(self[- ]signed|unable to verify|certificate)/i);
    expect(err.message).toContain('caFile');
  });

  test('verify-full: refuses a host name the certificate does not name', async () => {
    const err = (await connectPgUpstream(opts({ tls: 'verify-full', host: '127.0.0.1', caFile: pg.caFile })).catch((e: unknown) => e)) as UpstreamLoginError;
    expect(err).toBeInstanceOf(UpstreamLoginError);
    expect(err.message).toMatch(/IP: 127\.0\.0\.1 is not in the cert's list|does not match/);
  });

  test('verify-full: an unreadable caFile is explained', async () => {
    const err = (await connectPgUpstream(opts({ tls: 'verify-full', host: 'localhost', caFile: '/nonexistent/ca.pem' })).catch((e: unknown) => e)) as UpstreamLoginError;
    expect(err).toBeInstanceOf(UpstreamLoginError);
    expect(err.message).toMatch(/Cannot read the upstream CA file \/nonexistent\/ca.pem/);
  });

  test('cancel() goes over TLS when the session did', async () => {
    const c = await login(opts({ tls: 'verify-full', host: 'localhost', caFile: pg.caFile }));
    c.detach();
    const reply = new Promise<string>((resolve) => {
      const chunks: Buffer[] = [];
      c.socket.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        const all = Buffer.concat(chunks);
        if (all.length >= 6 && all[all.length - 6] === 0x5a) resolve(all.toString('latin1'));
      });
    });
    c.socket.resume();
    c.socket.write(serialize.query('select pg_sleep(10)'));
    // The statement must be running on the backend, or the cancel has nothing to interrupt.
    await waitFor(async () => (await pg.psql(`select count(*) from pg_stat_activity where pid = ${c.processId} and state = 'active' and query = 'select pg_sleep(10)'`)) === '1', {
      what: 'pg_sleep(10) running on the backend',
    });
    const started = Date.now();
    await c.cancel();
    expect(await reply).toContain('57014');
    expect(Date.now() - started).toBeLessThan(3000);
  });
});
