import fs from 'node:fs';
import net from 'node:net';
import {
  CLIENT_SSL,
  GATEWAY_CAPABILITIES,
  MAX_PACKET_PAYLOAD,
  PacketFramer,
  UTF8MB4_GENERAL_CI,
  decodeErr,
  decodeHandshakeV10,
  encodeHandshakeResponse41,
  encodePacket,
  type Packet,
} from '../../protocols/mysql';
import { startGatewayHarness, type MysqlHarness } from './harness';
import { connectMysql2, mariadbCli, run } from './clients';
import { waitFor } from '../helpers/waitFor';
import { makeTestCertificates } from '../helpers/tlsCert';

/**
 * With allowPlaintextFromLoopback: false even a loopback client must use TLS: the gateway
 * refuses the plaintext login before it asks for the token, so the token never crosses the
 * wire in clear.
 */
let h: MysqlHarness;
const certs = makeTestCertificates();

beforeAll(async () => {
  h = await startGatewayHarness({ protocol: 'mysql', allowPlaintextFromLoopback: false, tls: { certFile: certs.certFile, keyFile: certs.keyFile } });
}, 60000);

afterAll(async () => {
  await h?.stop();
  certs.cleanup();
});

test('a plaintext login is refused with 1045 before the token is asked for', async () => {
  const socket = net.connect(h.port, '127.0.0.1');
  const framer = new PacketFramer({ maxPayloadLength: MAX_PACKET_PAYLOAD });
  const packets: Packet[] = [];
  socket.on('data', (d: Buffer) => packets.push(...framer.push(d)));
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  await waitFor(() => packets.length === 1, { what: 'the greeting' });
  // Where a token may not travel in clear, the greeting does not offer mysql_clear_password:
  // a client could otherwise put the token in its HandshakeResponse before choosing TLS.
  expect(decodeHandshakeV10(packets[0].payload).authPluginName).toBe('mysql_native_password');
  socket.write(encodePacket(1, encodeHandshakeResponse41({
    capabilities: (GATEWAY_CAPABILITIES & ~CLIENT_SSL) >>> 0, maxPacketSize: MAX_PACKET_PAYLOAD, characterSet: UTF8MB4_GENERAL_CI,
    username: 'reader', authResponse: Buffer.alloc(0), database: 'app', authPluginName: 'mysql_native_password',
  })));
  await closed;
  // Greeting, then the ERR: no AuthSwitchRequest ever asked for the token.
  expect(packets).toHaveLength(2);
  expect(packets[1].sequenceId).toBe(2);
  expect(decodeErr(packets[1].payload)).toMatchObject({ code: 1045, sqlState: '28000', message: expect.stringMatching(/only over TLS.*mariadb --ssl/) });
  await h.audit.waitFor((e) => e.event === 'connection_rejected' && e.reason === 'plaintext_refused' && e.role === 'reader');
});

test('the mariadb CLI with --skip-ssl gets the same message', async () => {
  const r = await mariadbCli(h, await h.token(), 'SELECT 1');
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/ERROR 1045 \(28000\).*only over TLS/);
});

test('the same clients over TLS are admitted: mysql2, the mariadb CLI, PyMySQL', async () => {
  const c = await connectMysql2(h, await h.token(), { ssl: { ca: fs.readFileSync(certs.caFile) } });
  const [rows] = await c.query('SELECT COUNT(*) AS n FROM items');
  expect(rows).toEqual([{ n: 10 }]);
  await c.end();
  const cli = await mariadbCli(h, await h.token(), 'SELECT COUNT(*) FROM items', { extra: ['--ssl', `--ssl-ca=${certs.caFile}`, '--ssl-verify-server-cert'] });
  expect(cli.stderr).toBe('');
  expect(cli.stdout.trim()).toBe('10');
  const py = await run('/usr/bin/python3', ['-c', `
import os, pymysql
c = pymysql.connect(host='127.0.0.1', port=${h.port}, user='reader', database='app', password=os.environ['TOKEN'], ssl={'ca': os.environ['CA']})
cur = c.cursor(); cur.execute('SELECT COUNT(*) FROM items'); print(cur.fetchone()[0])
`], { TOKEN: await h.token(), CA: certs.caFile });
  expect(py.stderr).toBe('');
  expect(py.stdout.trim()).toBe('10');
  expect(h.audit.ofEvent('connection_accepted').every((e) => e.tls === true)).toBe(true);
  expect(h.audit.ofEvent('connection_accepted')).toHaveLength(3);
});

test('no token or secret appears in any audit line', () => {
  const joined = h.audit.lines.join('\n');
  for (const secret of h.secrets) expect(joined).not.toContain(secret);
});
