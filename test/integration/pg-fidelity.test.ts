/**
 * Where PostgreSQL's own behaviour is what drivers expect, the gateway does the same (each case
 * seen with a stock driver): one FATAL when the upstream ends a session with its own, and a
 * silent close for a Terminate sent before any startup packet. node-postgres against a real
 * gateway and upstream cluster.
 */
import net from 'node:net';
import { Client } from 'pg';
import { startGatewayHarness, type PgHarness } from './harness';

let h: PgHarness;
beforeAll(async () => {
  h = await startGatewayHarness({ protocol: 'postgres' });
}, 120_000);
afterAll(() => h?.stop());

async function connect(): Promise<Client> {
  const c = new Client({ host: '127.0.0.1', port: h.port, user: 'reader', database: 'app', password: await h.token() });
  await c.connect();
  return c;
}

/** Collects the ErrorResponses a raw socket receives until it closes (type 'E'). */
function bytesUntilClose(socket: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (d) => chunks.push(d));
  return new Promise((resolve) => socket.on('close', () => resolve(Buffer.concat(chunks))));
}

test('pg_terminate_backend: one FATAL, the upstream\'s own 57P01, as from PostgreSQL itself', async () => {
  const c = await connect();
  const errors: (Error & { code?: string; severity?: string })[] = [];
  c.on('error', (e) => errors.push(e));
  const ended = new Promise<void>((resolve) => c.on('end', () => resolve()));
  const { rows } = await c.query('select pg_backend_pid() as pid');
  await h.cluster.psql(`select pg_terminate_backend(${Number(rows[0].pid)})`);
  await ended;
  // Exactly the events a direct connection to PostgreSQL gives: the server's FATAL, then
  // node-postgres's own note that the socket closed (it has no SQLSTATE). No second FATAL.
  expect(errors.map((e) => [e.code, e.severity, e.message])).toEqual([
    ['57P01', 'FATAL', 'terminating connection due to administrator command'],
    [undefined, undefined, 'Connection terminated unexpectedly'],
  ]);
  await h.audit.waitFor((e) => e.event === 'session_end' && e.reason === 'upstream_closed');
});

test('an upstream that closes without a word: the gateway says so, once', async () => {
  const c = await connect();
  const errors: (Error & { code?: string })[] = [];
  c.on('error', (e) => errors.push(e));
  const ended = new Promise<void>((resolve) => c.on('end', () => resolve()));
  const { rows } = await c.query('select pg_backend_pid() as pid');
  // The gateway's upstream socket closing under it, with no message from the server.
  const pid = Number(rows[0].pid);
  const upstream = h.gateway.sessions.select({}).map((s) => (s as unknown as { conn?: { socket: net.Socket; processId: number } }).conn)
    .find((conn) => conn?.processId === pid);
  expect(upstream).toBeDefined();
  upstream!.socket.destroy();
  await ended;
  expect(errors.map((e) => e.code)).toEqual(['08006']);
  expect(errors[0].message).toBe('the upstream database closed the connection; reconnect to get a new session');
});

test('a Terminate before any startup packet is closed without a reply; HTTP still gets the diagnostic', async () => {
  const quiet = net.connect(h.port, '127.0.0.1');
  const quietBytes = bytesUntilClose(quiet);
  quiet.on('connect', () => quiet.write(Buffer.from([0x58, 0, 0, 0, 4])));
  expect((await quietBytes).length).toBe(0);

  const http = net.connect(h.port, '127.0.0.1');
  const httpBytes = bytesUntilClose(http);
  http.on('connect', () => http.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
  const reply = await httpBytes;
  expect(String.fromCharCode(reply[0])).toBe('E');
  expect(reply.toString('latin1')).toContain('is this a PostgreSQL client? (TLS without SSLRequest and HTTP also look like this)');

  // node-postgres: connect() followed at once by end() sends its buffered Terminate first.
  const c = new Client({ host: '127.0.0.1', port: h.port, user: 'reader', database: 'app', password: await h.token() });
  const errors: Error[] = [];
  c.on('error', (e) => errors.push(e));
  const connecting = c.connect().catch((e: Error) => e);
  await c.end();
  await connecting;
  expect(errors).toEqual([]);
});
