import * as net from 'node:net';
import * as tls from 'node:tls';
import { serialize } from 'pg-protocol';
import type { UpstreamTlsMode } from '../config/types';
import type { Secret } from '../config/secret';
import { md5Password } from '../../protocols/postgres/md5';
import { ScramError, ScramSha256Client } from '../../protocols/postgres/scram';
import { decodeAuthenticationRequest, decodeBackendKeyData, decodeErrorFields, decodeParameterStatus, decodeReadyForQuery } from '../../protocols/postgres/backend';
import { BackendType } from '../../protocols/postgres/constants';
import { ProtocolError } from '../../protocols/postgres/errors';
import { describeType, type Frame } from '../../protocols/postgres/framing';
import { BackendStream } from './backendStream';
import { LoginConversation, underDeadline, type ConversationFailure } from '../core/upstreamLogin';
import { CancelTarget, PgServerConnection, TxStatus } from './serverConnection';
import { SaltedPasswordCache, defaultSaltedPasswordCache } from './saltedPasswordCache';
import { connectUpstreamTcp, upstreamTlsOptions } from '../net/upstreamSocket';

export interface PgLoginOptions {
  host: string;
  port: number;
  tls: UpstreamTlsMode;
  caFile?: string;
  user: string;
  password: Secret;
  database: string;
  /** Startup GUCs, e.g. application_name. Sent as given: no client_encoding is added. */
  parameters: Record<string, string>;
  /** Bounds the whole login: TCP connect, TLS, authentication and the welcome messages. */
  connectTimeoutMs: number;
  /** Where SCRAM salted passwords are cached (the process-wide cache by default). */
  saltedPasswordCache?: SaltedPasswordCache;
}

export class UpstreamLoginError extends Error {
  /** SQLSTATE from the server's ErrorResponse, when the server refused the login. */
  readonly sqlState?: string;

  constructor(message: string, sqlState?: string) {
    super(message);
    this.name = 'UpstreamLoginError';
    this.sqlState = sqlState;
  }
}

const PROTOCOL_3_0 = 196608;
/** PostgreSQL's MAX_STARTUP_PACKET_LENGTH. */
const MAX_STARTUP_PACKET = 10000;
const SUPPORTED = 'tokengate supports trust, password (cleartext), md5 and scram-sha-256';

/** Logs in to an upstream PostgreSQL server with gateway-held credentials. */
export async function connectPgUpstream(o: PgLoginOptions): Promise<PgServerConnection> {
  const where = `${o.user}@${o.host}:${o.port}/${o.database}`;
  const startup = startupMessage({ user: o.user, database: o.database, ...o.parameters });
  const tlsOptions = o.tls === 'disable' ? undefined : await upstreamTlsOptions(o, loginError);
  return underDeadline({
    timeoutMs: o.connectTimeoutMs,
    timeoutError: () => new UpstreamLoginError(`Login to upstream PostgreSQL ${where} did not finish within ${o.connectTimeoutMs} ms. Check that the server is reachable and not overloaded, or raise the connect timeout.`),
    wrap: (err) => {
      if (err instanceof UpstreamLoginError) return err;
      if (err instanceof ScramError) return new UpstreamLoginError(`SCRAM authentication with upstream ${where} failed: ${err.message}`);
      return new UpstreamLoginError(`Login to upstream PostgreSQL ${where} failed: ${(err as Error).message}`);
    },
  }, async (attempt) => {
    let socket = attempt.socket = await connectUpstreamTcp(o.host, o.port, `PostgreSQL ${where}`, loginError);
    if (attempt.timedOut) throw new UpstreamLoginError('timed out');
    let usedTls: tls.ConnectionOptions | undefined;
    if (tlsOptions) {
      const upgraded = await negotiateTls(socket, o.tls, tlsOptions, where);
      if (upgraded) {
        socket = attempt.socket = upgraded;
        usedTls = tlsOptions;
      }
    }
    const stream = new BackendStream(MAX_LOGIN_MESSAGE);
    const conn: Conversation = new LoginConversation<Frame, BackendStream>(socket, stream, (f) => loginFailure(f, where));
    try {
      socket.write(startup);
      await authenticate(conn, o, where);
      const welcome = await readWelcome(conn, where);
      conn.release();
      const cancelTarget: CancelTarget = { host: o.host, port: o.port, tls: usedTls, timeoutMs: o.connectTimeoutMs };
      return new PgServerConnection({ socket, stream, cancelTarget, ...welcome });
    } catch (err) {
      conn.release();
      throw err;
    }
  });
}

function startupMessage(params: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(params)) {
    if (k.length === 0 || k.includes('\0') || v.includes('\0')) {
      throw new UpstreamLoginError(`Startup parameter "${k.replace(/\0/g, '')}" is empty or contains a NUL byte; PostgreSQL cannot accept it.`);
    }
    parts.push(Buffer.from(`${k}\0${v}\0`, 'utf8'));
  }
  const body = Buffer.concat([...parts, Buffer.from([0])]);
  const msg = Buffer.alloc(8 + body.length);
  if (msg.length > MAX_STARTUP_PACKET) {
    throw new UpstreamLoginError(`Startup parameters take ${msg.length} bytes; PostgreSQL accepts at most ${MAX_STARTUP_PACKET}. Shorten them.`);
  }
  msg.writeInt32BE(msg.length, 0);
  msg.writeInt32BE(PROTOCOL_3_0, 4);
  body.copy(msg, 8);
  return msg;
}


/** SSLRequest; resolves with the TLS socket, or undefined when `prefer` falls back to plaintext. */
function negotiateTls(socket: net.Socket, mode: UpstreamTlsMode, options: tls.ConnectionOptions, where: string): Promise<tls.TLSSocket | undefined> {
  return new Promise((resolve, reject) => {
    const fail = (msg: string): void => {
      cleanup();
      socket.destroy();
      reject(new UpstreamLoginError(msg));
    };
    const onData = (chunk: Buffer): void => {
      cleanup();
      // Bytes after the answer byte would be read as if they came over TLS (CVE-2021-23222).
      if (chunk.length !== 1) return fail(`Upstream ${where} answered SSLRequest with ${chunk.length} bytes instead of one; refusing the connection (possible injection).`);
      if (chunk[0] === 0x4e /* N */) {
        if (mode === 'prefer') return resolve(undefined);
        return fail(`Upstream ${where} does not accept TLS, but tls is "${mode}". Enable ssl on the server or set the upstream's tls to "prefer" or "disable".`);
      }
      if (chunk[0] !== 0x53 /* S */) return fail(`Upstream ${where} answered SSLRequest with byte 0x${chunk[0].toString(16)}; expected 'S' or 'N'. Is it a PostgreSQL server?`);
      socket.pause();
      const secure = tls.connect({ ...options, socket });
      const onTlsError = (err: Error): void => {
        secure.destroy();
        const hint = mode === 'verify-full'
          ? ' With tls "verify-full" the server certificate must chain to caFile and name the upstream host.'
          : '';
        reject(new UpstreamLoginError(`TLS handshake with upstream ${where} failed: ${err.message}.${hint}`));
      };
      secure.once('error', onTlsError);
      secure.once('secureConnect', () => {
        secure.removeListener('error', onTlsError);
        resolve(secure);
      });
    };
    const onError = (err: Error): void => fail(`Connection to upstream ${where} failed during SSLRequest: ${err.message}.`);
    const onClose = (): void => fail(`Upstream ${where} closed the connection after SSLRequest.`);
    const cleanup = (): void => {
      socket.removeListener('data', onData);
      socket.removeListener('error', onError);
      socket.removeListener('close', onClose);
    };
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.write(serialize.requestSsl());
  });
}

/**
 * Login replies are small (an ErrorResponse with every field is well under this), and so are the
 * replies to the connection's internal control statements, which read the same stream later.
 */
const MAX_LOGIN_MESSAGE = 64 * 1024;

function loginFailure(f: ConversationFailure, where: string): UpstreamLoginError {
  switch (f.kind) {
    // A bad length: the stream cannot be followed any further.
    case 'invalid': return new UpstreamLoginError(`Upstream ${where} sent an invalid message during login: ${f.error.message}. Is it a PostgreSQL server?`);
    case 'error': return new UpstreamLoginError(`Connection to upstream ${where} failed during login: ${f.error.message}.`);
    case 'closed': return new UpstreamLoginError(`Upstream ${where} closed the connection during login.`);
    case 'released': return new UpstreamLoginError(`The login conversation with upstream ${where} was already over.`);
  }
}

type Conversation = LoginConversation<Frame, BackendStream>;

function serverError(frame: Frame, where: string): UpstreamLoginError {
  const f = decodeErrorFields(frame.body);
  const hint = f.code === '28P01' || f.code === '28000'
    ? ' Check the role\'s user and password in the gateway config and the server\'s pg_hba.conf.'
    : '';
  return new UpstreamLoginError(`Upstream PostgreSQL ${where} refused the login: ${f.severity} ${f.code} ${f.message}.${hint}`, f.code);
}

async function authenticate(conn: Conversation, o: PgLoginOptions, where: string): Promise<void> {
  let scram: ScramSha256Client | undefined;
  for (;;) {
    const frame = await conn.next();
    if (frame.type === BackendType.ErrorResponse) throw serverError(frame, where);
    // Notices; NegotiateProtocolVersion (we asked for plain 3.0, so nothing to adjust).
    if (frame.type === BackendType.NoticeResponse || frame.type === BackendType.NegotiateProtocolVersion) continue;
    if (frame.type !== BackendType.Authentication) throw new ProtocolError(`expected an authentication request, got message ${describeType(frame.type)}`);
    const req = decodeAuthenticationRequest(frame.body);
    switch (req.kind) {
      case 'ok':
        // A server that skips SASLFinal never proved it knows the password: treat as an impostor.
        if (scram && !scram.completed) throw new UpstreamLoginError(`Upstream ${where} ended SCRAM authentication without proving it knows the password; refusing the connection.`);
        return;
      case 'cleartextPassword':
        conn.socket.write(serialize.password(o.password.reveal()));
        break;
      case 'md5Password':
        conn.socket.write(serialize.password(md5Password(o.user, o.password.reveal(), req.salt)));
        break;
      case 'sasl':
        if (scram) throw new ProtocolError('SASL authentication was requested twice');
        if (!req.mechanisms.includes('SCRAM-SHA-256')) {
          throw new UpstreamLoginError(`Upstream ${where} asked for SASL mechanisms ${req.mechanisms.join(', ') || '(none)'}; ${SUPPORTED} (SCRAM-SHA-256 without channel binding).`);
        }
        scram = new ScramSha256Client();
        conn.socket.write(serialize.sendSASLInitialResponseMessage('SCRAM-SHA-256', scram.clientFirstMessage()));
        break;
      case 'saslContinue': {
        if (!scram) throw new ProtocolError('SASLContinue without a SASL exchange');
        const { salt, iterations } = scram.receiveServerFirst(req.data.toString('utf8'));
        const cache = o.saltedPasswordCache ?? defaultSaltedPasswordCache;
        const salted = await cache.derive(o.password.reveal(), salt, iterations);
        conn.socket.write(serialize.sendSCRAMClientFinalMessage(scram.clientFinalMessage(salted)));
        break;
      }
      case 'saslFinal':
        if (!scram) throw new ProtocolError('SASLFinal without a SASL exchange');
        scram.receiveServerFinal(req.data.toString('utf8'));
        break;
      case 'unsupported':
        throw new UpstreamLoginError(`Upstream ${where} asked for ${req.method} authentication; ${SUPPORTED}. Change the server's pg_hba.conf entry for user "${o.user}".`);
    }
  }
}

async function readWelcome(conn: Conversation, where: string): Promise<{ processId: number; secretKey: Buffer; parameters: Map<string, string>; txStatus: TxStatus }> {
  const parameters = new Map<string, string>();
  let key: { processId: number; secretKey: Buffer } | undefined;
  for (;;) {
    const frame = await conn.next();
    switch (frame.type) {
      case BackendType.ParameterStatus: {
        const { name, value } = decodeParameterStatus(frame.body);
        parameters.set(name, value);
        break;
      }
      case BackendType.BackendKeyData:
        key = decodeBackendKeyData(frame.body);
        break;
      case BackendType.NoticeResponse:
        break;
      case BackendType.ErrorResponse:
        throw serverError(frame, where);
      case BackendType.ReadyForQuery:
        if (!key) throw new ProtocolError('upstream sent ReadyForQuery without BackendKeyData');
        return { ...key, parameters, txStatus: decodeReadyForQuery(frame.body) };
      default:
        throw new ProtocolError(`unexpected message ${describeType(frame.type)} after authentication`);
    }
  }
}

const loginError = (message: string): Error => new UpstreamLoginError(message);
