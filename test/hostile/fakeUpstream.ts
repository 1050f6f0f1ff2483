/**
 * A fake upstream that speaks just enough of a protocol to let the gateway log in, then answers
 * one chosen query with a hostile message. The peer under test is the gateway: a real database
 * cannot be made to send a malformed message.
 */
import net from 'node:net';
import { parseConfig } from '../../src/config/load';
import { startGateway, type Gateway } from '../../src/core/gateway';
import { MemoryTransport } from '../helpers/memoryTransport';
import { int32s } from './wire';
import { encodePacket } from '../../protocols/mysql';

export interface FakeUpstream {
  port: number;
  /** Server-side connections the gateway opened, and whether each is closed. */
  connections: { socket: net.Socket; closed: boolean }[];
  close(): Promise<void>;
}

/** The trigger: a client query containing this word gets `hostile` as its answer. */
export const TRIGGER = 'hostile_answer';

function listen(onConn: (s: net.Socket, conns: FakeUpstream['connections']) => void): Promise<FakeUpstream> {
  const connections: FakeUpstream['connections'] = [];
  const server = net.createServer((s) => {
    const entry = { socket: s, closed: false };
    connections.push(entry);
    s.on('close', () => (entry.closed = true));
    s.on('error', () => undefined);
    onConn(s, connections);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    port: (server.address() as net.AddressInfo).port,
    connections,
    close: () => new Promise<void>((r) => {
      for (const c of connections) c.socket.destroy();
      server.close(() => r());
    }),
  })));
}

const pgMsg = (type: string, body: Buffer): Buffer => Buffer.concat([Buffer.from(type), int32s(body.length + 4), body]);

/** PostgreSQL: trust login, then CommandComplete for every query but the trigger. */
export function fakePostgres(hostile: Buffer): Promise<FakeUpstream> {
  return listen((s) => {
    let buf = Buffer.alloc(0);
    let started = false;
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (!started) {
          if (buf.length < 4 || buf.length < buf.readUInt32BE(0)) return;
          buf = buf.subarray(buf.readUInt32BE(0));
          started = true;
          const params = [['server_version', '15.0'], ['client_encoding', 'UTF8'], ['standard_conforming_strings', 'on'], ['integer_datetimes', 'on']];
          s.write(Buffer.concat([
            pgMsg('R', int32s(0)),
            ...params.map(([k, v]) => pgMsg('S', Buffer.from(`${k}\0${v}\0`))),
            pgMsg('K', int32s(4242, 1234)),
            pgMsg('Z', Buffer.from('I')),
          ]));
          continue;
        }
        if (buf.length < 5 || buf.length < 1 + buf.readUInt32BE(1)) return;
        const type = String.fromCharCode(buf[0]);
        const body = buf.subarray(5, 1 + buf.readUInt32BE(1));
        buf = buf.subarray(1 + buf.readUInt32BE(1));
        if (type === 'X') return void s.end();
        if (type !== 'Q') continue;
        if (body.toString().includes(TRIGGER)) s.write(hostile);
        else s.write(Buffer.concat([pgMsg('C', Buffer.from('SET\0')), pgMsg('Z', Buffer.from('I'))]));
      }
    });
  });
}

/** MySQL: a greeting, OK to any login, OK to every command but a COM_QUERY with the trigger. */
export function fakeMysql(hostile: Buffer): Promise<FakeUpstream> {
  const ok = (seq: number): Buffer => encodePacket(seq, Buffer.from([0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00]));
  return listen((s) => {
    // HandshakeV10: version, thread id, scramble, capabilities (CLIENT_PROTOCOL_41 | SECURE_CONNECTION | PLUGIN_AUTH ...).
    const caps = 0x000fa20f | 0x00800000 | 0x00080000 | 0x00008000 | 0x00000200;
    const scramble = Buffer.alloc(20, 0x41);
    const greeting = Buffer.concat([
      Buffer.from([10]), Buffer.from('10.11.6-MariaDB-fake\0'), Buffer.from([7, 0, 0, 0]), scramble.subarray(0, 8), Buffer.from([0]),
      Buffer.from([caps & 0xff, (caps >> 8) & 0xff, 45, 2, 0, (caps >> 16) & 0xff, (caps >> 24) & 0xff, 21]), Buffer.alloc(10),
      scramble.subarray(8), Buffer.from([0]), Buffer.from('mysql_native_password\0'),
    ]);
    s.write(encodePacket(0, greeting));
    let buf = Buffer.alloc(0);
    let loggedIn = false;
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 4 && buf.length >= 4 + buf.readUIntLE(0, 3)) {
        const len = buf.readUIntLE(0, 3);
        const seq = buf[3];
        const payload = buf.subarray(4, 4 + len);
        buf = buf.subarray(4 + len);
        if (!loggedIn) {
          loggedIn = true;
          s.write(ok(seq + 1));
          continue;
        }
        if (payload[0] === 0x01) return void s.end(); // COM_QUIT
        if (payload[0] === 0x03 && payload.toString().includes(TRIGGER)) s.write(hostile);
        else if (payload[0] === 0x03 && payload.toString().includes('SELECT @@character_set_client')) s.write(baselineResult());
        else s.write(ok(1));
      }
    });
  });
}

const lenenc = (v: string): Buffer => Buffer.concat([Buffer.from([Buffer.byteLength(v)]), Buffer.from(v)]);

/** The answer to the pool's baseline query: 4 string columns, one row, classic EOF packets. */
function baselineResult(): Buffer {
  const eof = Buffer.from([0xfe, 0, 0, 0x02, 0]);
  const column = (name: string): Buffer => Buffer.concat([
    lenenc('def'), lenenc(''), lenenc(''), lenenc(''), lenenc(name), lenenc(''),
    Buffer.from([0x0c, 45, 0, 0, 1, 0, 0, 0xfd, 0, 0, 0, 0, 0]),
  ]);
  const names = ['@@character_set_client', '@@character_set_results', '@@collation_connection', 'DATABASE()'];
  const packets = [Buffer.from([4]), ...names.map(column), eof, Buffer.concat(['utf8mb4', 'utf8mb4', 'utf8mb4_general_ci', 'app'].map(lenenc)), eof];
  return Buffer.concat(packets.map((p, i) => encodePacket(i + 1, p)));
}

/** A gateway whose only upstream is `fake`, sharing the harness's issuer. */
export async function gatewayOn(protocol: 'postgres' | 'mysql', fake: FakeUpstream, issuer: string, audience: string): Promise<{ gateway: Gateway; port: number; audit: MemoryTransport }> {
  const yaml = `
listen:
  ${protocol}: 127.0.0.1:0
tls:
  allowPlaintextFromLoopback: true
oidc:
  issuer: ${issuer}
  audience: ${audience}
  algorithms: [RS256]
  requiredScopes: [db.connect]
  groupsClaim: groups
  devIssuer: true
upstreams:
  fake:
    protocol: ${protocol}
    host: 127.0.0.1
    port: ${fake.port}
    tls: disable
    pool: { maxConnections: 2, idleTimeout: 5m, maxLifetime: 1h, acquireTimeout: 3s }
    databases: { app: app }
    roles:
      reader: { user: fake_reader, password: \${FAKE_PASSWORD} }
grants:
  - name: readers
    match: { groups: [db-readers] }
    upstream: fake
    databases: [app]
    roles: [reader]
audit:
  file: stdout
session:
  authTimeout: 5s
`;
  const audit = new MemoryTransport();
  const gateway = await startGateway(parseConfig(yaml, '<fake>', { FAKE_PASSWORD: 'fake-upstream-password' }), { auditTransport: audit });
  const listener = protocol === 'postgres' ? gateway.postgres : gateway.mysql;
  return { gateway, port: listener!.port, audit };
}
