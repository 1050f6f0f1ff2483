import * as net from 'node:net';
import * as tls from 'node:tls';
import type { UpstreamTlsMode } from '../config/types';
import type { Secret } from '../config/secret';
import { cachingSha2RsaEncrypt, decodeAuthMoreData, decodeAuthSwitchRequest, encodeClearPassword } from '../../protocols/mysql/auth';
import { AUTH_MORE_DATA_HEADER, AUTH_SWITCH_HEADER, CACHING_SHA2_FAST_AUTH_SUCCESS, CACHING_SHA2_PASSWORD, CACHING_SHA2_PERFORM_FULL_AUTH, CACHING_SHA2_REQUEST_PUBLIC_KEY, CLIENT_COMPRESS, CLIENT_CONNECT_ATTRS, CLIENT_CONNECT_WITH_DB, CLIENT_LOCAL_FILES, CLIENT_LONG_PASSWORD, CLIENT_PLUGIN_AUTH, CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA, CLIENT_PROTOCOL_41, CLIENT_SECURE_CONNECTION, CLIENT_SSL, CLIENT_TRANSACTIONS, ERR_HEADER, FORMAT_CAPABILITIES, OK_HEADER } from '../../protocols/mysql/constants';
import { MysqlDecodeError, PacketError } from '../../protocols/mysql/errors';
import { HandshakeV10, decodeHandshakeV10, encodeHandshakeResponse41, encodeSslRequest } from '../../protocols/mysql/handshake';
import { decodeErr, decodeOk } from '../../protocols/mysql/packets';
import { UnsupportedAuthError, authResponse, initialPlugin, switchScramble } from './authPlugins';
import { LoginConversation, underDeadline } from '../core/upstreamLogin';
import { encodePacket } from '../../protocols/mysql/framing';
import { MysqlPacketReader, type MysqlPayload } from './packetReader';
import { MysqlServerConnection } from './serverConnection';
import { connectUpstreamTcp, upstreamTlsOptions } from '../net/upstreamSocket';

export interface MysqlLoginOptions {
  host: string;
  port: number;
  tls: UpstreamTlsMode;
  caFile?: string;
  user: string;
  password: Secret;
  /** The real database name ('' = none). */
  database: string;
  /**
   * The client's format-affecting capability bits (a FORMAT_CAPABILITIES subset) to request.
   * The connection uses exactly these ∩ the server's, so relayed packets match what the client
   * expects; compare `conn.capabilities & FORMAT_CAPABILITIES` with the client's before relaying.
   */
  capabilities: number;
  /** Collation id from the client's HandshakeResponse (45 utf8mb4_general_ci, 224 utf8mb4_unicode_ci, 33 utf8...). */
  characterSet: number;
  /** Bounds the whole login: TCP connect, TLS, authentication. */
  connectTimeoutMs: number;
  /** Sent as connection attributes, e.g. program_name "<client program> (tokengate: <sub>)". */
  connectAttributes?: Record<string, string>;
}

export class MysqlLoginError extends Error {
  /** The server's error code when it refused the login (1045 access denied, 1049 unknown database...). */
  readonly code?: number;
  readonly sqlState?: string;

  constructor(message: string, code?: number, sqlState?: string) {
    super(message);
    this.name = 'MysqlLoginError';
    this.code = code;
    this.sqlState = sqlState;
  }
}

/** Capabilities the gateway always asks for upstream (the login itself needs them). */
const LOGIN_CAPABILITIES =
  (CLIENT_LONG_PASSWORD | CLIENT_PROTOCOL_41 | CLIENT_TRANSACTIONS | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA) >>> 0;
/** The server must have these; every MySQL >= 5.5 and MariaDB does. */
const REQUIRED_SERVER_CAPABILITIES = (CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH) >>> 0;
/**
 * Never negotiated upstream, even if asked (the gateway does not offer them to clients either): the
 * relay reads plain packet headers, and LOCAL INFILE would let a server read files.
 */
const FORBIDDEN_CAPABILITIES = (CLIENT_COMPRESS | CLIENT_LOCAL_FILES) >>> 0;
/** max_allowed_packet announced upstream: the largest MySQL allows, so the gateway is never the limit. */
const MAX_PACKET_SIZE = 0x40000000;
/** Bound on any single payload during login (greeting, auth data, RSA key, ERR). */
const MAX_LOGIN_PAYLOAD = 64 * 1024;
/** AuthSwitchRequests accepted in one login (MariaDB may switch once per alternative of `IDENTIFIED VIA a OR b`). */
const MAX_AUTH_SWITCHES = 4;

/** Logs in to an upstream MySQL/MariaDB server with gateway-held credentials. */
export async function connectMysqlUpstream(o: MysqlLoginOptions): Promise<MysqlServerConnection> {
  const where = `${o.user}@${o.host}:${o.port}/${o.database || '(no database)'}`;
  if (!Number.isInteger(o.characterSet) || o.characterSet < 1 || o.characterSet > 255) {
    throw new MysqlLoginError(`Collation id ${o.characterSet} cannot be sent in a HandshakeResponse (1..255 expected).`);
  }
  const tlsOptions = o.tls === 'disable' ? undefined : await upstreamTlsOptions(o, loginError);

  const failure = (what: string): Error => new MysqlLoginError(`Connection to upstream MySQL ${where} ${what} during login.`);

  return underDeadline({
    timeoutMs: o.connectTimeoutMs,
    timeoutError: () => new MysqlLoginError(`Login to upstream MySQL ${where} did not finish within ${o.connectTimeoutMs} ms. Check that the server is reachable and not overloaded, or raise the connect timeout.`),
    wrap: (err) => {
      if (err instanceof MysqlLoginError) return err;
      if (err instanceof UnsupportedAuthError) return new MysqlLoginError(`Cannot log in to upstream MySQL ${where}: ${err.message}.`);
      if (err instanceof MysqlDecodeError || err instanceof PacketError) {
        return new MysqlLoginError(`Upstream ${where} sent a malformed packet during login (${err.message}). Is it a MySQL/MariaDB server?`);
      }
      return new MysqlLoginError(`Login to upstream MySQL ${where} failed: ${(err as Error).message}`);
    },
  }, async (attempt) => {
    let socket = attempt.socket = await connectUpstreamTcp(o.host, o.port, `MySQL ${where}`, loginError);
    if (attempt.timedOut) throw new MysqlLoginError('timed out');
    let conv = conversation(socket, failure);
    const greetingPacket = await conv.next();
    const greeting = decodeGreeting(greetingPacket.payload, where);
    const missing = REQUIRED_SERVER_CAPABILITIES & ~greeting.capabilities;
    if (missing) {
      throw new MysqlLoginError(`Upstream ${where} (${greeting.serverVersion}) lacks capabilities 0x${missing.toString(16)} (PROTOCOL_41, SECURE_CONNECTION, PLUGIN_AUTH); tokengate needs MySQL 5.5+ or MariaDB.`);
    }
    let sequenceId = greetingPacket.sequenceId + 1;

    if (o.database !== '' && !(greeting.capabilities & CLIENT_CONNECT_WITH_DB)) {
      throw new MysqlLoginError(`Upstream ${where} cannot select a database at login (no CONNECT_WITH_DB).`);
    }
    const attrs = greeting.capabilities & CLIENT_CONNECT_ATTRS ? { _client_name: 'tokengate', ...o.connectAttributes } : undefined;
    // Final before the SSLRequest: servers take the capabilities from it, not from the later response.
    let requested = (LOGIN_CAPABILITIES | (o.capabilities & FORMAT_CAPABILITIES & ~FORBIDDEN_CAPABILITIES)) >>> 0;
    if (o.database !== '') requested = (requested | CLIENT_CONNECT_WITH_DB) >>> 0;
    if (attrs) requested = (requested | CLIENT_CONNECT_ATTRS) >>> 0;
    let capabilities = (requested & greeting.capabilities) >>> 0;
    let usedTls = false;
    if (tlsOptions) {
      if (greeting.capabilities & CLIENT_SSL) {
        // Plaintext bytes queued behind the greeting would be read as if they came over TLS.
        if (conv.reader.buffered > 0) throw new MysqlLoginError(`Upstream ${where} sent unexpected bytes after its greeting; refusing the connection (possible injection).`);
        conv.release();
        capabilities = (capabilities | CLIENT_SSL) >>> 0;
        send(conv, sequenceId++, encodeSslRequest({ capabilities, maxPacketSize: MAX_PACKET_SIZE, characterSet: o.characterSet }));
        socket = attempt.socket = await upgradeToTls(socket, o.tls, tlsOptions, where);
        conv = conversation(socket, failure);
        usedTls = true;
      } else if (o.tls !== 'prefer') {
        throw new MysqlLoginError(`Upstream ${where} does not offer TLS, but tls is "${o.tls}". Configure ssl_cert/ssl_key on the server, or set the upstream's tls to "prefer" or "disable".`);
      }
    }

    const password = o.password.reveal();
    let plugin: string = initialPlugin(greeting.authPluginName, usedTls);
    let scramble = greeting.authPluginData;
    const firstResponse = authResponse(plugin, password, scramble, usedTls);
    if (!(capabilities & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA) && firstResponse.length > 255) {
      throw new MysqlLoginError(`Upstream ${where} does not accept auth data longer than 255 bytes (no PLUGIN_AUTH_LENENC_CLIENT_DATA); shorten the password or use a hashing plugin.`);
    }
    send(conv, sequenceId, encodeHandshakeResponse41({
      capabilities,
      maxPacketSize: MAX_PACKET_SIZE,
      characterSet: o.characterSet,
      username: o.user,
      authResponse: firstResponse,
      database: o.database !== '' ? o.database : undefined,
      authPluginName: plugin,
      connectAttributes: attrs,
    }));

    let switches = 0;
    let keyRequested = false;
    for (;;) {
      const packet = await conv.next();
      const p = packet.payload;
      const reply = (payload: Buffer): void => send(conv, (packet.sequenceId + 1) & 0xff, payload);
      if (p[0] === OK_HEADER) {
        const ok = decodeOk(p, capabilities);
        if (conv.reader.buffered > 0) throw new MysqlLoginError(`Upstream ${where} sent unexpected bytes after the login OK; refusing the connection.`);
        conv.release();
        return new MysqlServerConnection({
          socket,
          reader: conv.reader,
          threadId: greeting.connectionId,
          serverVersion: greeting.serverVersion,
          capabilities,
          characterSet: o.characterSet,
          statusFlags: ok.statusFlags,
          // KILL QUERY goes over a separate login with the same credentials and TLS mode.
          openSideConnection: () => connectMysqlUpstream({ ...o, database: '', connectAttributes: { program_name: 'tokengate (kill query)' } }),
        });
      }
      if (p[0] === ERR_HEADER) throw serverRefusal(p, where, o.user);
      if (p[0] === AUTH_SWITCH_HEADER) {
        if (++switches > MAX_AUTH_SWITCHES) throw new MysqlLoginError(`Upstream ${where} asked to switch authentication plugins more than ${MAX_AUTH_SWITCHES} times; refusing.`);
        const sw = decodeAuthSwitchRequest(p);
        plugin = sw.pluginName;
        scramble = switchScramble(sw.pluginData);
        keyRequested = false;
        reply(authResponse(plugin, password, scramble, usedTls));
        continue;
      }
      if (p[0] === AUTH_MORE_DATA_HEADER && plugin === CACHING_SHA2_PASSWORD) {
        const data = decodeAuthMoreData(p);
        if (data.length === 1 && data[0] === CACHING_SHA2_FAST_AUTH_SUCCESS) continue; // the OK follows
        if (data.length === 1 && data[0] === CACHING_SHA2_PERFORM_FULL_AUTH) {
          // Over TLS the password itself; otherwise ask for the server's RSA key (the reply comes next).
          keyRequested = !usedTls;
          reply(usedTls ? encodeClearPassword(password) : Buffer.from([CACHING_SHA2_REQUEST_PUBLIC_KEY]));
          continue;
        }
        if (keyRequested && data.includes('-----BEGIN PUBLIC KEY-----')) {
          keyRequested = false;
          reply(rsaEncrypt(password, scramble, data.toString('latin1'), where));
          continue;
        }
        throw new MysqlLoginError(`Upstream ${where} sent caching_sha2_password data the gateway does not understand (${data.length} bytes, first 0x${(data[0] ?? 0).toString(16)}).`);
      }
      throw new MysqlLoginError(`Upstream ${where} sent an unexpected packet during ${plugin} authentication (first byte 0x${(p[0] ?? 0).toString(16)}).`);
    }
  });
}

type Conversation = LoginConversation<MysqlPayload, MysqlPacketReader>;

/** The gateway's side of a connection-phase exchange; `failure` words a socket failure ("was closed by the server"). */
function conversation(socket: net.Socket, failure: (what: string) => Error): Conversation {
  return new LoginConversation(socket, new MysqlPacketReader(MAX_LOGIN_PAYLOAD), (f) => {
    switch (f.kind) {
      case 'error': return failure(`failed: ${f.error.message}`);
      case 'closed': return failure('was closed by the server');
      case 'invalid': return f.error;
      case 'released': return failure('was released');
    }
  });
}

function send(conv: Conversation, sequenceId: number, payload: Buffer): void {
  conv.socket.write(encodePacket(sequenceId, payload));
}

/**
 * Reads the greeting of a fresh TCP connection and closes it: the client-facing listener
 * echoes this version string (drivers switch MariaDB quirks on it). The server logs an
 * aborted connection; call it once per upstream, not per client.
 */
export async function probeMysqlServerVersion(host: string, port: number, timeoutMs: number): Promise<string> {
  const where = `${host}:${port}`;
  return underDeadline({
    timeoutMs,
    timeoutError: () => new MysqlLoginError(`Upstream MySQL ${where} sent no greeting within ${timeoutMs} ms. Check that the server is reachable and is a MySQL/MariaDB server.`),
    wrap: (err) => (err instanceof MysqlLoginError ? err : new MysqlLoginError(`Upstream MySQL ${where} sent no usable greeting: ${(err as Error).message}`)),
    closeAfter: true,
  }, async (attempt) => {
    const socket = attempt.socket = await connectUpstreamTcp(host, port, `MySQL ${where}`, loginError);
    const conv = conversation(socket, (what) => new MysqlLoginError(`Connection to upstream MySQL ${where} ${what} before its greeting.`));
    return decodeGreeting((await conv.next()).payload, where).serverVersion;
  });
}

function decodeGreeting(payload: Buffer, where: string): HandshakeV10 {
  // A server refusing the connection outright (too many connections, host blocked) sends ERR instead.
  if (payload[0] === ERR_HEADER) {
    const e = decodeErr(payload);
    throw new MysqlLoginError(`Upstream MySQL ${where} refused the connection before login: ERROR ${e.code}${e.sqlState ? ` (${e.sqlState})` : ''}: ${e.message}`, e.code, e.sqlState);
  }
  return decodeHandshakeV10(payload);
}

const LOGIN_HINTS: Record<number, string> = {
  1045: ' Check the role\'s user and password in the gateway config, and the user\'s host and plugin on the server.',
  1044: ' Grant the upstream user access to this database, or fix the database mapping in the gateway config.',
  1049: ' The database does not exist on the server: fix the database mapping in the gateway config.',
  1040: ' The server has reached max_connections: lower the pool\'s maxConnections or raise max_connections.',
  1129: ' The server blocked this host after connection errors: run FLUSH HOSTS (or mariadb-admin flush-hosts) on the server.',
  1130: ' The server has no user entry allowing connections from the gateway\'s address.',
};

function serverRefusal(payload: Buffer, where: string, user: string): MysqlLoginError {
  const e = decodeErr(payload);
  const hint = LOGIN_HINTS[e.code] ?? '';
  return new MysqlLoginError(`Upstream MySQL ${where} refused the login of "${user}": ERROR ${e.code}${e.sqlState ? ` (${e.sqlState})` : ''}: ${e.message}.${hint}`, e.code, e.sqlState);
}

function rsaEncrypt(password: string, scramble: Buffer, pem: string, where: string): Buffer {
  try {
    return cachingSha2RsaEncrypt(password, scramble, pem);
  } catch (err) {
    throw new MysqlLoginError(`Upstream ${where} sent an RSA public key for caching_sha2_password that cannot be used: ${(err as Error).message}.`);
  }
}


/** The TLS handshake that follows an SSLRequest (the server sends no reply byte). */
function upgradeToTls(socket: net.Socket, mode: UpstreamTlsMode, options: tls.ConnectionOptions, where: string): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const secure = tls.connect({ ...options, socket });
    const onError = (err: Error): void => {
      secure.destroy();
      const hint = mode === 'verify-full' ? ' With tls "verify-full" the server certificate must chain to caFile and name the upstream host.' : '';
      reject(new MysqlLoginError(`TLS handshake with upstream MySQL ${where} failed: ${err.message}.${hint}`));
    };
    secure.once('error', onError);
    secure.once('secureConnect', () => {
      secure.removeListener('error', onError);
      resolve(secure);
    });
  });
}

const loginError = (message: string): Error => new MysqlLoginError(message);
