import { cachingSha2Scramble, encodeClearPassword, nativePasswordScramble } from '../../protocols/mysql/auth';
import { CACHING_SHA2_PASSWORD, MYSQL_CLEAR_PASSWORD, MYSQL_NATIVE_PASSWORD } from '../../protocols/mysql/constants';

/** The upstream authentication plugins the gateway can answer. */
export type UpstreamAuthPlugin = typeof MYSQL_NATIVE_PASSWORD | typeof CACHING_SHA2_PASSWORD | typeof MYSQL_CLEAR_PASSWORD;

export const SUPPORTED_PLUGINS_TEXT = 'tokengate logs in upstream with mysql_native_password, caching_sha2_password or (over TLS only) mysql_clear_password';

/**
 * Thrown when the server wants an authentication the gateway will not do; the login turns it
 * into a MysqlLoginError with the connection details.
 */
export class UnsupportedAuthError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsupportedAuthError';
  }
}

/**
 * The plugin to answer the greeting with. A plugin we don't know (or clear text without TLS)
 * is answered as mysql_native_password, as stock clients do: the server then switches to the
 * user's real plugin, and that switch is accepted or refused by authResponse().
 */
export function initialPlugin(greetingPlugin: string, tls: boolean): UpstreamAuthPlugin {
  if (greetingPlugin === CACHING_SHA2_PASSWORD) return CACHING_SHA2_PASSWORD;
  if (greetingPlugin === MYSQL_CLEAR_PASSWORD && tls) return MYSQL_CLEAR_PASSWORD;
  return MYSQL_NATIVE_PASSWORD;
}

/** The first auth response for `plugin` (greeting or AuthSwitchRequest), given the server's scramble. */
export function authResponse(plugin: string, password: string, scramble: Buffer, tls: boolean): Buffer {
  switch (plugin) {
    case MYSQL_NATIVE_PASSWORD:
      return nativePasswordScramble(password, scramble);
    case CACHING_SHA2_PASSWORD:
      return cachingSha2Scramble(password, scramble);
    case MYSQL_CLEAR_PASSWORD:
      if (!tls) {
        throw new UnsupportedAuthError(
          'the server asked for mysql_clear_password, which would send the password unencrypted; ' +
            'refusing. Set the upstream\'s tls to "require" or "verify-full" (and enable TLS on the server), or give the user a hashing plugin',
        );
      }
      return encodeClearPassword(password);
    default:
      throw new UnsupportedAuthError(
        `the server asked for the authentication plugin "${plugin}"; ${SUPPORTED_PLUGINS_TEXT}. ` +
          'Change the user\'s plugin on the server (e.g. ALTER USER ... IDENTIFIED VIA mysql_native_password)',
      );
  }
}

/** The scramble part of AuthSwitchRequest plugin data: servers append a NUL to the 20 bytes. */
export function switchScramble(pluginData: Buffer): Buffer {
  return pluginData.length > 20 && pluginData[pluginData.length - 1] === 0 ? pluginData.subarray(0, pluginData.length - 1) : pluginData;
}
