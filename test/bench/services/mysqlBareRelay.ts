/**
 * A bare Node.js MySQL login relay: the reference row of scenario 5. Per client connection it
 * exchanges the same messages tokengate does with a loopback client (a greeting offering
 * mysql_clear_password, an AuthSwitchRequest only for clients that do not take it, OK), takes a pooled upstream session logged in with
 * tokengate's own connectMysqlUpstream, relays raw bytes, and on COM_QUIT resets the upstream
 * with the same pipelined COM_RESET_CONNECTION + SELECT the gateway's pool sends. No token check,
 * no grants, no audit: what the runtime alone reaches for this exchange on this machine.
 *
 * Run as a child process: `node mysqlBareRelay.js LISTEN_PORT UPSTREAM_PORT USER DATABASE`, with
 * the upstream password in the environment variable TG_BARE_RELAY_PASSWORD (never an argument).
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { encodeAuthSwitchRequest } from '../../../protocols/mysql/auth';
import { encodeQuery, encodeSimpleCommand } from '../../../protocols/mysql/command';
import {
  CLIENT_SSL, COM_RESET_CONNECTION, GATEWAY_CAPABILITIES, MYSQL_CLEAR_PASSWORD, PACKET_HEADER_LENGTH,
  SERVER_MORE_RESULTS_EXISTS, SERVER_SESSION_STATE_CHANGED, SERVER_STATUS_AUTOCOMMIT, UTF8MB4_GENERAL_CI, formatCapabilities,
} from '../../../protocols/mysql/constants';
import { encodePacket } from '../../../protocols/mysql/framing';
import { SCRAMBLE_LENGTH, decodeHandshakeResponse41, encodeHandshakeV10 } from '../../../protocols/mysql/handshake';
import { encodeErr, encodeOk } from '../../../protocols/mysql/packets';
import { Secret } from '../../../src/config/secret';
import { connectMysqlUpstream, probeMysqlServerVersion } from '../../../src/mysql/login';
import type { MysqlServerConnection } from '../../../src/mysql/serverConnection';
import { freePort, startDaemon, waitForPort, type Daemon, type Wrapper } from '../proc';
import { keepNextTickShape } from '../../../src/v8/nextTickShape';

export interface MysqlBareRelay {
  port: number;
  pid: number;
  daemon: Daemon;
  stop(): Promise<void>;
}

const PASSWORD_ENV = 'TG_BARE_RELAY_PASSWORD';

export async function startMysqlBareRelay(
  dir: string,
  mariadb: { port: number; user: string; password: string; database: string },
  wrapper?: Wrapper,
): Promise<MysqlBareRelay> {
  const port = await freePort();
  const daemon = startDaemon(
    'mysql-bare-relay', process.execPath,
    [__filename, String(port), String(mariadb.port), mariadb.user, mariadb.database],
    path.join(dir, 'mysql-bare-relay.log'),
    { env: { [PASSWORD_ENV]: mariadb.password }, wrapper },
  );
  await waitForPort(port, { daemon, timeoutMs: wrapper?.startTimeoutMs });
  return { port, pid: daemon.child.pid!, daemon, stop: () => daemon.stop() };
}

// ---- the child process ----------------------------------------------------------------------

/** Same as tokengate's pool: at most this many upstream sessions. */
const MAX_UPSTREAM = 20;
const RESET_TIMEOUT_MS = 5000;
const CONNECT_TIMEOUT_MS = 10_000;
/** What tokengate greets with on a listener without TLS. */
const GREETING_CAPABILITIES = (GATEWAY_CAPABILITIES & ~CLIENT_SSL) >>> 0;
/** The pipelined pair tokengate's pool sends on release (src/mysql/pool.ts). */
const RESET_AND_CHECK = [
  encodeSimpleCommand(COM_RESET_CONNECTION),
  encodeQuery('SELECT @@character_set_client, @@character_set_results, @@collation_connection, DATABASE()'),
];
/** COM_QUIT, sequence id 0: what libmariadb writes on mysql_close(). */
const QUIT_CHUNK = Buffer.from([0x01, 0x00, 0x00, 0x00, 0x01]);
const AUTH_SWITCH = encodeAuthSwitchRequest(MYSQL_CLEAR_PASSWORD, Buffer.alloc(0));

interface Upstream {
  host: string;
  port: number;
  user: string;
  password: Secret;
  database: string;
}

function relayServer(listenPort: number, up: Upstream, serverVersion: string): void {
  const idle: MysqlServerConnection[] = [];
  const waiters: Array<{ caps: number; charset: number; resolve(c: MysqlServerConnection): void; reject(e: Error): void }> = [];
  let open = 0; // upstream sessions that exist or are being opened
  let nextConnectionId = 1;
  const stats = { sessions: 0, upstreamLogins: 0, discarded: 0 };
  // The log says whether upstream sessions were reused (a handful of logins for thousands of sessions).
  process.once('SIGTERM', () => {
    process.stderr.write(`mysql bare relay: ${stats.sessions} client sessions, ${stats.upstreamLogins} upstream logins, ${stats.discarded} upstream sessions closed\n`);
    process.exit(0);
  });

  const openNew = (caps: number, charset: number): Promise<MysqlServerConnection> => {
    open++;
    stats.upstreamLogins++;
    return connectMysqlUpstream({
      host: up.host, port: up.port, tls: 'disable', user: up.user, password: up.password, database: up.database,
      capabilities: caps, characterSet: charset, connectTimeoutMs: CONNECT_TIMEOUT_MS, connectAttributes: { program_name: 'bare relay' },
    }).catch((err: Error) => {
      open--;
      throw err;
    });
  };

  const acquire = (caps: number, charset: number): Promise<MysqlServerConnection> => {
    for (let conn = idle.pop(); conn; conn = idle.pop()) {
      // Keyed by nothing: sysbench always logs in with the same capabilities and character set.
      if (!conn.broken) return Promise.resolve(conn);
      discard(conn);
    }
    if (open < MAX_UPSTREAM) return openNew(caps, charset);
    return new Promise((resolve, reject) => waiters.push({ caps, charset, resolve, reject }));
  };

  const discard = (conn: MysqlServerConnection): void => {
    conn.close();
    open--;
    stats.discarded++;
    const w = waiters.shift();
    if (w) openNew(w.caps, w.charset).then(w.resolve, w.reject);
  };

  const release = (conn: MysqlServerConnection): void => {
    const w = waiters.shift();
    if (w) w.resolve(conn);
    else idle.push(conn);
  };

  /** Back into the pool after the same reset tokengate does; closed if that fails. */
  const giveBack = (conn: MysqlServerConnection): void => {
    if (conn.broken) {
      discard(conn);
      return;
    }
    conn.attach();
    conn.commands(RESET_AND_CHECK, RESET_TIMEOUT_MS).then(
      ([reset, check]) => {
        if (reset.ok && !reset.error && !check.error && !conn.broken) release(conn);
        else discard(conn);
      },
      () => discard(conn),
    );
  };

  const session = (client: net.Socket): void => {
    stats.sessions++;
    client.on('error', () => undefined);
    let state: 'response' | 'password' | 'connecting' | 'relay' | 'closed' = 'response';
    let buffered: Buffer = Buffer.alloc(0);
    let capabilities = 0;
    let charset = UTF8MB4_GENERAL_CI;
    let okSequence = 4;

    const fail = (sequenceId: number, message: string): void => {
      if (state === 'closed') return;
      state = 'closed';
      client.end(encodePacket(sequenceId, encodeErr({ code: 1105, sqlState: 'HY000', message })));
    };

    const onLoginData = (chunk: Buffer): void => {
      buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
      while (buffered.length >= PACKET_HEADER_LENGTH && (state === 'response' || state === 'password')) {
        const length = buffered.readUIntLE(0, 3);
        if (buffered.length < PACKET_HEADER_LENGTH + length) return;
        const payload = buffered.subarray(PACKET_HEADER_LENGTH, PACKET_HEADER_LENGTH + length);
        buffered = buffered.subarray(PACKET_HEADER_LENGTH + length);
        if (state === 'response') {
          // HandshakeResponse41 (seq 1), decoded with the same codec tokengate uses.
          let response;
          try {
            response = decodeHandshakeResponse41(payload, GREETING_CAPABILITIES);
          } catch (err) {
            return fail(2, `bad handshake response: ${(err as Error).message}`);
          }
          capabilities = (response.capabilities & GREETING_CAPABILITIES) >>> 0;
          charset = response.characterSet || UTF8MB4_GENERAL_CI;
          if (response.authPluginName !== MYSQL_CLEAR_PASSWORD) {
            // As tokengate: a client that did not take the clear-password offer is asked with an AuthSwitchRequest.
            client.write(encodePacket(2, AUTH_SWITCH));
            state = 'password';
            continue;
          }
          okSequence = 2; // the password came in the response (libmariadb): no AuthSwitch round trip
        }
        // The clear password (in the response, or seq 3 after the switch): accepted whatever it is.
        state = 'connecting';
        client.removeListener('data', onLoginData);
        client.pause();
        acquire(formatCapabilities(capabilities), charset).then(startRelay, (err: Error) => fail(okSequence, `bare relay: no upstream: ${err.message}`));
      }
    };

    const startRelay = (conn: MysqlServerConnection): void => {
      if (state !== 'connecting') {
        release(conn); // the client went away while the upstream was being taken: it is still clean
        return;
      }
      state = 'relay';
      const server = conn.socket;
      const leftover = conn.detach();
      const flags = conn.statusFlags & ~(SERVER_MORE_RESULTS_EXISTS | SERVER_SESSION_STATE_CHANGED) & 0xffff;
      client.write(encodePacket(okSequence, encodeOk({ statusFlags: flags }, capabilities)));
      if (leftover.length) client.write(leftover);
      if (buffered.length) server.write(buffered); // bytes the client sent right behind its password

      const resumeClient = (): void => {
        client.resume();
      };
      const resumeServer = (): void => {
        server.resume();
      };
      const fromClient = (chunk: Buffer): void => {
        if (chunk.length === QUIT_CHUNK.length && chunk.equals(QUIT_CHUNK)) {
          finish();
          return;
        }
        if (!server.write(chunk)) {
          client.pause();
          server.once('drain', resumeClient);
        }
      };
      const fromServer = (chunk: Buffer): void => {
        if (!client.write(chunk)) {
          server.pause();
          client.once('drain', resumeServer);
        }
      };
      const finish = (): void => {
        if (state === 'closed') return;
        state = 'closed';
        client.removeListener('data', fromClient);
        client.removeListener('drain', resumeServer);
        client.destroy();
        server.removeListener('data', fromServer);
        server.removeListener('drain', resumeClient);
        server.removeListener('close', finish);
        giveBack(conn);
      };
      client.on('close', finish);
      server.on('close', finish);
      server.on('data', fromServer); // resumes the socket detach() paused
      client.on('data', fromClient);
      client.resume();
    };

    client.on('close', () => {
      if (state !== 'relay') state = 'closed';
    });
    client.on('data', onLoginData);
    const greeting = encodeHandshakeV10({
      serverVersion,
      connectionId: nextConnectionId++,
      authPluginData: scramble(),
      capabilities: GREETING_CAPABILITIES,
      characterSet: UTF8MB4_GENERAL_CI,
      statusFlags: SERVER_STATUS_AUTOCOMMIT,
      authPluginName: MYSQL_CLEAR_PASSWORD, // as tokengate greets loopback clients (plaintext allowed there)
    });
    client.write(encodePacket(0, greeting));
  };

  net.createServer({ noDelay: true }, session).listen(listenPort, '127.0.0.1');
}

/** A 20-byte scramble of printable characters, as tokengate makes it. */
function scramble(): Buffer {
  const out = randomBytes(SCRAMBLE_LENGTH);
  for (let i = 0; i < out.length; i++) out[i] = 0x21 + (out[i] % 94);
  return out;
}

async function main(): Promise<void> {
  const [listenPort, upstreamPort, user, database] = process.argv.slice(2);
  const password = process.env[PASSWORD_ENV];
  if (password === undefined) throw new Error(`${PASSWORD_ENV} is not set`);
  const up: Upstream = { host: '127.0.0.1', port: Number(upstreamPort), user, password: new Secret(password, `env ${PASSWORD_ENV}`), database };
  // tokengate greets with the upstream's own version string (drivers switch quirks on it).
  const version = await probeMysqlServerVersion(up.host, up.port, CONNECT_TIMEOUT_MS);
  relayServer(Number(listenPort), up, version);
}

if (require.main === module) {
  keepNextTickShape(); // as tokengate and the bare pipe do
  main().catch((err: Error) => {
    process.stderr.write(`mysql bare relay: ${err.message}\n`);
    process.exit(1);
  });
}
