/**
 * Authentication exchanges: AuthSwitchRequest (how the gateway asks a client for
 * its token in clear), AuthMoreData, and the client-side math of the upstream
 * login plugins (mysql_native_password, caching_sha2_password).
 */
import { constants as cryptoConstants, createHash, publicEncrypt } from 'node:crypto';
import { AUTH_MORE_DATA_HEADER, AUTH_SWITCH_HEADER } from './constants';
import { MysqlDecodeError } from './errors';
import { MAX_NAME_BYTES, SCRAMBLE_LENGTH } from './handshake';
import { PayloadReader } from './lenenc';

/** The largest clear password/token accepted from a client (an Okta JWT is ~1-2 KiB). */
export const MAX_CLEAR_PASSWORD_BYTES = 65536;

/** 0xFE, plugin name, NUL, plugin data (passed as is: add a trailing NUL yourself if the plugin wants one). */
export function encodeAuthSwitchRequest(pluginName: string, pluginData: Buffer): Buffer {
  return Buffer.concat([Buffer.from([AUTH_SWITCH_HEADER]), Buffer.from(pluginName + '\0', 'utf8'), pluginData]);
}

/**
 * Decodes an AuthSwitchRequest. `pluginData` is everything after the name,
 * including the trailing NUL servers append to a scramble; the scramble functions
 * below only use its first 20 bytes.
 */
export function decodeAuthSwitchRequest(payload: Buffer): { pluginName: string; pluginData: Buffer } {
  const r = new PayloadReader(payload, 'AuthSwitchRequest');
  if (r.u8('header') !== AUTH_SWITCH_HEADER) {
    throw new MysqlDecodeError('malformed', 'AuthSwitchRequest', `header 0x${payload[0].toString(16)} where 0xfe was expected`);
  }
  if (r.atEnd) {
    // A bare 0xFE is the pre-4.1 "old auth switch"; nothing speaks that any more.
    throw new MysqlDecodeError('unsupported', 'AuthSwitchRequest', 'old-style auth switch (mysql_old_password) is not supported');
  }
  const pluginName = r.nulString('plugin name', MAX_NAME_BYTES, true);
  return { pluginName, pluginData: r.rest() };
}

/** AuthMoreData (0x01 + data): caching_sha2 statuses, public keys, etc. */
export function encodeAuthMoreData(data: Buffer): Buffer {
  return Buffer.concat([Buffer.from([AUTH_MORE_DATA_HEADER]), data]);
}

export function decodeAuthMoreData(payload: Buffer): Buffer {
  if (payload.length === 0 || payload[0] !== AUTH_MORE_DATA_HEADER) {
    throw new MysqlDecodeError('malformed', 'AuthMoreData', 'expected a payload starting with 0x01');
  }
  return payload.subarray(1);
}

/**
 * The client's reply to a mysql_clear_password switch: the password followed by a
 * NUL. A missing terminator is tolerated; a NUL inside the value is not (it would
 * make the token ambiguous).
 */
export function decodeClearPassword(payload: Buffer): string {
  if (payload.length > MAX_CLEAR_PASSWORD_BYTES + 1) {
    throw new MysqlDecodeError(
      'too_long',
      'clear password',
      `the password/token is longer than ${MAX_CLEAR_PASSWORD_BYTES} bytes`,
    );
  }
  const body = payload.length > 0 && payload[payload.length - 1] === 0 ? payload.subarray(0, payload.length - 1) : payload;
  if (body.includes(0)) {
    throw new MysqlDecodeError('malformed', 'clear password', 'the password contains a NUL byte before its end');
  }
  return body.toString('utf8');
}

/** mysql_clear_password reply: password + NUL. */
export function encodeClearPassword(password: string): Buffer {
  return Buffer.from(password + '\0', 'utf8');
}

function hash(alg: 'sha1' | 'sha256', ...parts: Buffer[]): Buffer {
  const h = createHash(alg);
  for (const p of parts) h.update(p);
  return h.digest();
}

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] ^ b[i % b.length];
  return out;
}

function scramble20(scramble: Buffer, plugin: string): Buffer {
  if (scramble.length < SCRAMBLE_LENGTH) {
    throw new RangeError(`${plugin}: the scramble must have at least ${SCRAMBLE_LENGTH} bytes, got ${scramble.length}`);
  }
  return scramble.subarray(0, SCRAMBLE_LENGTH);
}

/** mysql_native_password: SHA1(pw) XOR SHA1(scramble + SHA1(SHA1(pw))); an empty password gives an empty reply. */
export function nativePasswordScramble(password: string, scramble: Buffer): Buffer {
  if (password === '') return Buffer.alloc(0);
  const stage1 = hash('sha1', Buffer.from(password, 'utf8'));
  const stage2 = hash('sha1', stage1);
  return xor(stage1, hash('sha1', scramble20(scramble, 'mysql_native_password'), stage2));
}

/** caching_sha2_password fast path: SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) + scramble). */
export function cachingSha2Scramble(password: string, scramble: Buffer): Buffer {
  if (password === '') return Buffer.alloc(0);
  const stage1 = hash('sha256', Buffer.from(password, 'utf8'));
  const stage2 = hash('sha256', stage1);
  return xor(stage1, hash('sha256', stage2, scramble20(scramble, 'caching_sha2_password')));
}

/**
 * caching_sha2_password full authentication without TLS: RSA-OAEP (SHA-1) of
 * (password + NUL) XOR scramble (repeated), with the server's public key.
 */
export function cachingSha2RsaEncrypt(password: string, scramble: Buffer, publicKeyPem: string): Buffer {
  const plain = xor(Buffer.from(password + '\0', 'utf8'), scramble20(scramble, 'caching_sha2_password'));
  return publicEncrypt({ key: publicKeyPem, padding: cryptoConstants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, plain);
}
