/**
 * listen.proxyProtocol on both protocols, with a real HAProxy (send-proxy and send-proxy-v2) in
 * front of the gateway and real drivers (node-postgres, mysql2) from chosen loopback addresses:
 * the audit records and the session list show the real client; the loopback plaintext rule is
 * decided by the real client, not by the balancer; a PROXY header from an address that is not
 * trusted is refused, and so is a trusted balancer that sends none; direct clients still connect.
 * examples/haproxy/haproxy.cfg is checked by HAProxy and run with its addresses substituted.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { Client } from 'pg';
import { waitFor } from '../helpers/waitFor';
import { freePort, HAPROXY, startHaproxy, type HaproxyProcess } from '../helpers/haproxy';
import { encodeProxyV1, encodeProxyV2 } from '../net/proxyEncode';
import { startGatewayHarness, type Harness, type Protocol } from './harness';

const ROOT = join(__dirname, '..', '..');
/** The balancer is on 127.0.0.1; clients come from other loopback addresses, so each side is told apart. */
const CLIENT = '127.0.0.5';
const UNTRUSTED = '127.0.0.7';
const LISTEN = '  proxyProtocol: { trusted: [127.0.0.1/32] }';

type Header = Buffer | undefined;

interface Outcome {
  ok: boolean;
  /** The client's own port, to find its audit record by the remote the gateway saw. */
  localPort?: number;
  /** SQLSTATE (PostgreSQL) or errno (MySQL), and the message. */
  code?: string | number;
  message?: string;
}

/** A socket from `localAddress` that writes `header` first, as a balancer would. */
function socketFrom(localAddress: string, header: Header): net.Socket {
  const s = new net.Socket();
  const connect = s.connect.bind(s) as (o: net.TcpSocketConnectOpts) => net.Socket;
  // node-postgres calls stream.connect(port, host) itself: bind the source address there.
  (s as unknown as { connect: (port: number, host: string) => net.Socket }).connect = (port, host) => {
    s.once('connect', () => header && s.write(header));
    return connect({ port, host, localAddress });
  };
  return s;
}

async function pgQuery(port: number, token: string, from: string, header: Header): Promise<Outcome> {
  let localPort: number | undefined;
  const c = new Client({
    host: '127.0.0.1', port, user: 'reader', database: 'app', password: token,
    stream: () => {
      const s = socketFrom(from, header);
      s.once('connect', () => (localPort = s.localPort));
      return s;
    },
  } as never);
  c.on('error', () => undefined);
  try {
    await c.connect();
    await c.query('select 1');
    return { ok: true, localPort };
  } catch (err) {
    const e = err as { code?: string; message: string };
    return { ok: false, code: e.code, message: e.message, localPort };
  } finally {
    await c.end().catch(() => undefined);
  }
}

async function mysqlQuery(port: number, token: string, from: string, header: Header): Promise<Outcome> {
  const s = socketFrom(from, header);
  s.connect(port, '127.0.0.1');
  await new Promise((resolve, reject) => s.once('connect', resolve).once('error', reject));
  const localPort = s.localPort;
  try {
    const c = await mysql.createConnection({ stream: s, user: 'reader', database: 'app', password: token, enableCleartextPlugin: true, connectTimeout: 10_000 });
    await c.query('SELECT 1');
    await c.end();
    return { ok: true, localPort };
  } catch (err) {
    const e = err as { errno?: number; message: string };
    s.destroy();
    return { ok: false, code: e.errno, message: e.message, localPort };
  }
}

const QUERY: Record<Protocol, typeof pgQuery> = { postgres: pgQuery, mysql: mysqlQuery };
/** What each protocol answers to a refused PROXY header: PostgreSQL protocol_violation, MySQL ER_HANDSHAKE_ERROR. */
const HEADER_REFUSED: Record<Protocol, string | number> = { postgres: '08P01', mysql: 1043 };
const PLAINTEXT_REFUSED: Record<Protocol, string | number> = { postgres: '28000', mysql: 1045 };

/** An HAProxy config with one frontend per (name, port) forwarding to the gateway with `option`. */
function haproxyConfig(gatewayPort: number, frontends: Array<{ name: string; port: number; option: string }>): string {
  return [
    'defaults', '    mode tcp', '    timeout connect 5s', '    timeout client 30s', '    timeout server 30s', '',
    ...frontends.flatMap((f) => [
      `frontend ${f.name}`, `    bind 127.0.0.1:${f.port}`, `    default_backend ${f.name}_gw`,
      `backend ${f.name}_gw`, `    server gw 127.0.0.1:${gatewayPort} ${f.option}`, '',
    ]),
  ].join('\n');
}

describe.each<Protocol>(['postgres', 'mysql'])('PROXY protocol on the %s listener', (protocol) => {
  let h: Harness;
  let haproxy: HaproxyProcess;
  let v1Port: number;
  let v2Port: number;
  const query = QUERY[protocol];

  beforeAll(async () => {
    h = protocol === 'postgres'
      ? await startGatewayHarness({ protocol, listenYaml: LISTEN, authTimeout: '2s' })
      : await startGatewayHarness({ protocol, listenYaml: LISTEN, authTimeout: '2s' });
    [v1Port, v2Port] = [await freePort(), await freePort()];
    haproxy = await startHaproxy(haproxyConfig(h.port, [{ name: 'v1', port: v1Port, option: 'send-proxy' }, { name: 'v2', port: v2Port, option: 'send-proxy-v2' }]), [v1Port, v2Port]);
  });

  afterAll(async () => {
    await haproxy?.stop();
    await h?.stop();
  });

  const acceptedFrom = (localPort: number): Promise<Record<string, unknown>> =>
    h.audit.waitFor((r) => r.event === 'connection_accepted' && r.remote === `${CLIENT}:${localPort}`);

  test.each([['send-proxy (v1)', () => v1Port], ['send-proxy-v2', () => v2Port]])('through HAProxy %s the audit records the real client and the balancer', async (_name, port) => {
    const r = await query(port(), await h.token(), CLIENT, undefined);
    expect(r).toMatchObject({ ok: true });
    const record = await acceptedFrom(r.localPort!);
    expect(record.via).toMatch(/^127\.0\.0\.1:\d+$/);
    const end = await h.audit.waitFor((x) => x.event === 'session_end' && x.sessionId === record.sessionId);
    expect(end.remote).toBe(`${CLIENT}:${r.localPort}`);
  });

  test('the session list shows the real client while the session is live', async () => {
    const s = socketFrom(CLIENT, undefined);
    s.connect(v2Port, '127.0.0.1');
    await new Promise((resolve) => s.once('connect', resolve));
    // A session in its handshake is listed too (MySQL: greeted; PostgreSQL: waiting for the startup packet).
    const seen = await waitFor(() => h.gateway.sessions.select().map((x) => x.info()).find((i) => i.remote === `${CLIENT}:${s.localPort}`), { what: 'the proxied session in the list' });
    expect(seen.protocol).toBe(protocol);
    s.destroy();
  });

  test('a trusted balancer naming a client on another machine: the loopback plaintext rule does not apply', async () => {
    const header = encodeProxyV2({ family: 'tcp4', sourceAddress: '203.0.113.7', sourcePort: 4242, destinationAddress: '127.0.0.1', destinationPort: h.port });
    const r = await query(h.port, await h.token(), '127.0.0.1', header);
    expect(r).toMatchObject({ ok: false, code: PLAINTEXT_REFUSED[protocol] });
    const record = await h.audit.waitFor((x) => x.event === 'connection_rejected' && x.remote === '203.0.113.7:4242');
    expect(record).toMatchObject({ reason: 'plaintext_refused', via: expect.stringMatching(/^127\.0\.0\.1:/) });
  });

  test('a v2 LOCAL header (a health check) from the balancer: its own address stands', async () => {
    const r = await query(h.port, await h.token(), '127.0.0.1', encodeProxyV2(undefined));
    expect(r).toMatchObject({ ok: true });
    await h.audit.waitFor((x) => x.event === 'connection_accepted' && x.remote === `127.0.0.1:${r.localPort}`);
  });

  test.each([
    ['v1', () => encodeProxyV1({ family: 'tcp4', sourceAddress: '198.51.100.1', sourcePort: 1, destinationAddress: '127.0.0.1', destinationPort: 2 })],
    ['v2', () => encodeProxyV2({ family: 'tcp4', sourceAddress: '198.51.100.1', sourcePort: 1, destinationAddress: '127.0.0.1', destinationPort: 2 })],
  ])('a crafted %s header from an address that is not trusted is refused', async (_v, header) => {
    const r = await query(h.port, await h.token(), UNTRUSTED, header());
    expect(r).toMatchObject({ ok: false, code: HEADER_REFUSED[protocol] });
    expect(r.message).toMatch(/only from the load balancers in listen\.proxyProtocol\.trusted/);
    const record = await h.audit.waitFor((x) => x.event === 'connection_rejected' && x.remote === `${UNTRUSTED}:${r.localPort}`);
    expect(record.reason).toBe('proxy_header_untrusted');
  });

  test('a client that is not a balancer connects directly without a header', async () => {
    const r = await query(h.port, await h.token(), UNTRUSTED, undefined);
    expect(r).toMatchObject({ ok: true });
    const record = await h.audit.waitFor((x) => x.event === 'connection_accepted' && x.remote === `${UNTRUSTED}:${r.localPort}`);
    expect(record.via).toBeUndefined();
  });

  test('the trusted balancer without a header is refused (accept-proxy semantics)', async () => {
    // PostgreSQL: the startup packet is not a header, refused at once. MySQL: the client waits for the greeting; refused after authTimeout (2s).
    const r = await query(h.port, await h.token(), '127.0.0.1', undefined);
    expect(r).toMatchObject({ ok: false, code: HEADER_REFUSED[protocol] });
    expect(r.message).toMatch(/expects a PROXY protocol header/);
    const record = await h.audit.waitFor((x) => x.event === 'connection_rejected' && x.remote === `127.0.0.1:${r.localPort}`);
    expect(record.reason).toBe('proxy_header_missing');
  });

  test('no token reaches the audit or an error message', () => {
    for (const secret of h.secrets) expect(h.audit.lines.join('\n')).not.toContain(secret);
  });
});

describe('examples/haproxy/haproxy.cfg', () => {
  const example = readFileSync(join(ROOT, 'examples', 'haproxy', 'haproxy.cfg'), 'utf8');

  test('HAProxy accepts it as written', () => {
    expect(execFileSync(HAPROXY, ['-c', '-f', join(ROOT, 'examples', 'haproxy', 'haproxy.cfg')], { encoding: 'utf8' })).toMatch(/valid/);
  });

  test('run with its addresses substituted, it carries agents to the gateway with their address', async () => {
    const h = await startGatewayHarness({ protocol: 'postgres', listenYaml: LISTEN });
    const [pgPort, myPort] = [await freePort(), await freePort()];
    const config = example
      .replace('bind :6432', `bind 127.0.0.1:${pgPort}`).replace('bind :6033', `bind 127.0.0.1:${myPort}`)
      .replace(/10\.0\.0\.1[12]:6432/g, `127.0.0.1:${h.port}`);
    let haproxy: HaproxyProcess | undefined;
    try {
      haproxy = await startHaproxy(config, [pgPort, myPort]);
      const r = await pgQuery(pgPort, await h.token(), CLIENT, undefined);
      expect(r).toMatchObject({ ok: true });
      await h.audit.waitFor((x) => x.event === 'connection_accepted' && x.remote === `${CLIENT}:${r.localPort}`);
    } finally {
      await haproxy?.stop();
      await h.stop();
    }
  });
});
