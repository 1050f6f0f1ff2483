import { TLSSocket } from 'node:tls';
import { FORMAT_CAPABILITIES, GATEWAY_CAPABILITIES, PacketFramer, ResponseTracker, captureForResponse, encodePacket, encodeQuery } from '../../protocols/mysql';
import { Secret } from '../../src/config/secret';
import { MysqlLoginError, MysqlLoginOptions, connectMysqlUpstream } from '../../src/mysql/login';
import { MysqlServerConnection } from '../../src/mysql/serverConnection';
import { MariadbServer, startMariadbServer } from '../helpers/mariadbServer';
import { waitFor } from '../helpers/waitFor';

/** TLS modes against a throwaway mariadbd with a test CA (the machine's MariaDB has no TLS). */

let db: MariadbServer;
const open: MysqlServerConnection[] = [];
const PASSWORD = 'Tls-pw-5e1c77';

beforeAll(async () => {
  db = await startMariadbServer();
  await db.sql(`
    CREATE DATABASE app;
    CREATE USER 'tg_tls'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('${PASSWORD}');
    CREATE USER 'tg_tls_req'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('${PASSWORD}') REQUIRE SSL;
    GRANT ALL ON app.* TO 'tg_tls'@'%', 'tg_tls_req'@'%';`);
}, 60_000);
afterAll(async () => {
  for (const c of open) c.close();
  await db?.stop();
});

function opts(over: Partial<MysqlLoginOptions>): MysqlLoginOptions {
  return {
    host: db.host, port: db.port, tls: 'require', user: 'tg_tls', password: new Secret(PASSWORD, 'test'), database: 'app',
    capabilities: (GATEWAY_CAPABILITIES & FORMAT_CAPABILITIES) >>> 0, characterSet: 45, connectTimeoutMs: 5000, ...over,
  };
}

async function login(o: MysqlLoginOptions): Promise<MysqlServerConnection> {
  const c = await connectMysqlUpstream(o);
  open.push(c);
  return c;
}

/** The cipher the server reports for this session ('' when plaintext). */
async function serverCipher(c: MysqlServerConnection): Promise<string | null> {
  const r = await c.query("SHOW SESSION STATUS LIKE 'Ssl_cipher'", 3000);
  expect(r.error).toBeUndefined();
  return r.rows?.[0]?.[1] ?? null;
}

describe('upstream TLS modes', () => {
  test('require: TLS without certificate checks (IP host, cert names localhost only)', async () => {
    const c = await login(opts({ tls: 'require' }));
    expect(c.socket).toBeInstanceOf(TLSSocket);
    expect(await serverCipher(c)).toMatch(/\w/);
  });

  test('prefer: uses TLS when the server offers it', async () => {
    const c = await login(opts({ tls: 'prefer' }));
    expect(c.socket).toBeInstanceOf(TLSSocket);
    expect(await serverCipher(c)).toMatch(/\w/);
  });

  test('disable: plaintext even though the server has TLS; a REQUIRE SSL user is then refused', async () => {
    const c = await login(opts({ tls: 'disable' }));
    expect(c.socket).not.toBeInstanceOf(TLSSocket);
    expect(await serverCipher(c)).toBe('');
    const err = (await connectMysqlUpstream(opts({ tls: 'disable', user: 'tg_tls_req' })).catch((e: unknown) => e)) as MysqlLoginError;
    expect(err).toBeInstanceOf(MysqlLoginError);
    expect(err.code).toBe(1045);
    const ok = await login(opts({ tls: 'require', user: 'tg_tls_req' }));
    expect(await serverCipher(ok)).toMatch(/\w/);
  });

  test('verify-full: accepts the right CA and host name', async () => {
    const c = await login(opts({ tls: 'verify-full', host: 'localhost', caFile: db.caFile }));
    expect((c.socket as TLSSocket).authorized).toBe(true);
    expect(await serverCipher(c)).toMatch(/\w/);
  });

  test('verify-full: refuses a certificate from another CA', async () => {
    const err = (await connectMysqlUpstream(opts({ tls: 'verify-full', host: 'localhost', caFile: db.otherCaFile })).catch((e: unknown) => e)) as MysqlLoginError;
    expect(err).toBeInstanceOf(MysqlLoginError);
    expect(err.message).toMatch(/TLS handshake with upstream MySQL .* failed: .*(self[- ]signed|unable to verify|certificate)/i);
    expect(err.message).toContain('caFile');
  });

  test('verify-full: refuses a host name the certificate does not name', async () => {
    const err = (await connectMysqlUpstream(opts({ tls: 'verify-full', host: '127.0.0.1', caFile: db.caFile })).catch((e: unknown) => e)) as MysqlLoginError;
    expect(err).toBeInstanceOf(MysqlLoginError);
    expect(err.message).toMatch(/IP: 127\.0\.0\.1 is not in the cert's list|does not match/);
  });

  test('verify-full: an unreadable caFile is explained', async () => {
    const err = (await connectMysqlUpstream(opts({ tls: 'verify-full', host: 'localhost', caFile: '/nonexistent/ca.pem' })).catch((e: unknown) => e)) as MysqlLoginError;
    expect(err).toBeInstanceOf(MysqlLoginError);
    expect(err.message).toMatch(/Cannot read the upstream CA file \/nonexistent\/ca.pem/);
  });

  test('connection attributes reach performance_schema (program_name names the agent)', async () => {
    const c = await login(opts({ connectAttributes: { program_name: 'psql-like (tokengate: svc-reporting)' } }));
    const attrs = await db.sql(`SELECT ATTR_NAME, ATTR_VALUE FROM performance_schema.session_connect_attrs WHERE PROCESSLIST_ID = ${c.threadId} ORDER BY ATTR_NAME`);
    expect(attrs.split('\n')).toEqual(['_client_name\ttokengate', 'program_name\tpsql-like (tokengate: svc-reporting)']);
  });

  test('killQuery() logs in with the same TLS settings (verify-full)', async () => {
    const c = await login(opts({ tls: 'verify-full', host: 'localhost', caFile: db.caFile }));
    c.detach();
    const framer = new PacketFramer({ maxPayloadLength: 0xffffff, capture: captureForResponse });
    const tracker = new ResponseTracker(c.capabilities);
    tracker.begin(0x03);
    const done = new Promise<void>((resolve) => {
      const onData = (chunk: Buffer): void => {
        for (const p of framer.push(chunk)) {
          if (tracker.onPacket(p.payload, p.payloadLength) === 'done') {
            c.socket.removeListener('data', onData);
            resolve();
          }
        }
      };
      c.socket.on('data', onData);
    });
    const started = Date.now();
    c.socket.write(encodePacket(0, encodeQuery('SELECT SLEEP(10)')));
    // The statement must be running upstream, or KILL QUERY has nothing to interrupt.
    await waitFor(async () => (await db.sql(`SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ${c.threadId} AND INFO LIKE 'SELECT SLEEP%'`)) === '1', {
      what: 'SELECT SLEEP(10) running upstream',
    });
    await c.killQuery();
    await done;
    expect(Date.now() - started).toBeLessThan(5000);
    c.attach();
    expect(await serverCipher(c)).toMatch(/\w/);
  });
});

describe('a server without TLS (the machine MariaDB on 3306)', () => {
  const plain = (tls: MysqlLoginOptions['tls']): Partial<MysqlLoginOptions> => ({ host: '127.0.0.1', port: 3306, tls, user: 'tg_h6_nouser', database: '' });

  test('require and verify-full refuse to continue in plaintext, before sending credentials', async () => {
    for (const mode of ['require', 'verify-full'] as const) {
      const err = (await connectMysqlUpstream(opts(plain(mode))).catch((e: unknown) => e)) as MysqlLoginError;
      expect(err).toBeInstanceOf(MysqlLoginError);
      expect(err.message).toMatch(new RegExp(`does not offer TLS, but tls is "${mode}"`));
      expect(err.code).toBeUndefined(); // no server refusal: the gateway stopped first
    }
  });

  test('prefer falls back to plaintext (the login then proceeds: here refused for an unknown user)', async () => {
    const err = (await connectMysqlUpstream(opts(plain('prefer'))).catch((e: unknown) => e)) as MysqlLoginError;
    expect(err).toBeInstanceOf(MysqlLoginError);
    expect(err.code).toBe(1045);
  });
});
