import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { quoteEnvReferences } from '../../config/envRefs';
import { formatHostPort, HostPortError, isLoopbackHost, parseHostPort } from '../../config/hostport';
import { resolveConfigPath, ConfigError } from '../../config/load';
import { AdminUsageError } from './errors';

/**
 * Where the admin API is and which bearer to send: `--admin` / `--admin-token-file`, else
 * TOKENGATE_ADMIN_URL / TOKENGATE_ADMIN_TOKEN, else the config's listen.admin and admin.tokenFile.
 * The URL and the token are looked up independently; the config is read only when one is missing.
 */

export interface AdminTargetOptions {
  admin?: string;
  adminTokenFile?: string;
  config?: string;
}

export interface AdminTarget {
  /** Base URL without a trailing slash, e.g. http://127.0.0.1:9187 */
  url: string;
  /** The bearer. Never printed: messages name `tokenSource` instead. */
  token: string;
  /** Where the token came from, for messages: "--admin-token-file /path", "TOKENGATE_ADMIN_TOKEN", "admin.tokenFile /path". */
  tokenSource: string;
}

/** The two keys the CLI needs from the config. */
interface ConfigAdminKeys {
  source: string;
  admin?: string;
  tokenFile?: string;
}

/**
 * Reads only listen.admin and admin.tokenFile. The full config also resolves every upstream
 * password, which an operator's shell usually cannot (the variables and files are the service's):
 * the CLI must work without them. The server has validated the rest.
 */
function readConfigAdminKeys(explicitPath: string | undefined, missing: string): ConfigAdminKeys {
  let path: string;
  try {
    path = resolveConfigPath(explicitPath);
  } catch (err) {
    if (err instanceof ConfigError) throw new AdminUsageError(`${missing}, and ${err.problems.map((p) => p.message).join('; ')}`);
    throw err;
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new AdminUsageError(`cannot read the config file ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'}); check the path and its permissions, or pass --admin and --admin-token-file`);
  }
  const doc = parseDocument(quoteEnvReferences(text), { uniqueKeys: true });
  if (doc.errors.length > 0) throw new AdminUsageError(`the config file ${path} is not valid YAML; run tokengate check-config -c ${path}`);
  const data = doc.toJS({ maxAliasCount: 100 }) as unknown;
  const get = (obj: unknown, key: string): unknown =>
    typeof obj === 'object' && obj !== null && !Array.isArray(obj) && Object.prototype.hasOwnProperty.call(obj, key) ? (obj as Record<string, unknown>)[key] : undefined;
  const admin = get(get(data, 'listen'), 'admin');
  const tokenFile = get(get(data, 'admin'), 'tokenFile');
  const problem = (key: string): never => {
    throw new AdminUsageError(`${key} in ${path} is not a string; run tokengate check-config -c ${path}`);
  };
  if (admin !== undefined && typeof admin !== 'string') problem('listen.admin');
  if (tokenFile !== undefined && typeof tokenFile !== 'string') problem('admin.tokenFile');
  const base = dirname(resolve(path));
  return {
    source: path,
    admin: admin as string | undefined,
    tokenFile: tokenFile === undefined ? undefined : isAbsolute(tokenFile as string) ? (tokenFile as string) : resolve(base, tokenFile as string),
  };
}

/** listen.admin as a URL to connect to: a wildcard listener is reached on loopback. */
function urlFromListen(listen: string, source: string): string {
  let hp: { host: string; port: number };
  try {
    hp = parseHostPort(listen.trim(), true);
  } catch (err) {
    if (err instanceof HostPortError) throw new AdminUsageError(`listen.admin in ${source}: ${err.message}`);
    throw err;
  }
  if (hp.port === 0) throw new AdminUsageError(`listen.admin in ${source} is port 0 (any free port), so its address is not known; pass --admin http://HOST:PORT with the port the gateway logged`);
  const host = hp.host === '0.0.0.0' ? '127.0.0.1' : hp.host === '::' ? '::1' : hp.host;
  return `http://${formatHostPort({ host, port: hp.port })}`;
}

/** A base URL the bearer may be sent to: http(s), and plain http only to this machine. */
export function checkAdminUrl(text: string, from: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new AdminUsageError(`${from} is not a URL (expected e.g. http://127.0.0.1:9187)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new AdminUsageError(`${from} must be an http or https URL (e.g. http://127.0.0.1:9187)`);
  if (url.username || url.password) throw new AdminUsageError(`${from} must not contain credentials; the bearer comes from --admin-token-file or TOKENGATE_ADMIN_TOKEN`);
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
    throw new AdminUsageError(`refusing to send the admin bearer over plain http to ${url.host} (${from}); use https (a TLS proxy in front of the admin listener) or an SSH tunnel to a loopback address`);
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

function readTokenFile(path: string, from: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new AdminUsageError(`cannot read the admin token file ${path} (${from}): ${(err as NodeJS.ErrnoException).code ?? 'error'}; check the path and that this user may read it`);
  }
  const token = text.trim();
  if (token === '') throw new AdminUsageError(`the admin token file ${path} (${from}) is empty`);
  return token;
}

export function resolveAdminTarget(opts: AdminTargetOptions, env: NodeJS.ProcessEnv = process.env): AdminTarget {
  let config: ConfigAdminKeys | undefined;
  const fromConfig = (missing: string): ConfigAdminKeys => (config ??= readConfigAdminKeys(opts.config, missing));
  const NO_URL = 'no admin API address given (--admin, TOKENGATE_ADMIN_URL)';
  const NO_TOKEN = 'no admin token given (--admin-token-file, TOKENGATE_ADMIN_TOKEN)';

  let url: string;
  if (opts.admin !== undefined) url = checkAdminUrl(opts.admin, '--admin');
  else if (env.TOKENGATE_ADMIN_URL) url = checkAdminUrl(env.TOKENGATE_ADMIN_URL, 'TOKENGATE_ADMIN_URL');
  else {
    const c = fromConfig(NO_URL);
    if (c.admin === undefined) {
      throw new AdminUsageError(`no admin API address: pass --admin http://HOST:PORT, set TOKENGATE_ADMIN_URL, or set listen.admin in ${c.source}`);
    }
    url = checkAdminUrl(urlFromListen(c.admin, c.source), `listen.admin in ${c.source}`);
  }

  if (opts.adminTokenFile !== undefined) {
    const source = `--admin-token-file ${opts.adminTokenFile}`;
    return { url, token: readTokenFile(opts.adminTokenFile, '--admin-token-file'), tokenSource: source };
  }
  if (env.TOKENGATE_ADMIN_TOKEN) {
    const token = env.TOKENGATE_ADMIN_TOKEN.trim();
    if (token !== '') return { url, token, tokenSource: 'TOKENGATE_ADMIN_TOKEN' };
  }
  const c = fromConfig(NO_TOKEN);
  if (c.tokenFile === undefined) {
    throw new AdminUsageError(`no admin token: pass --admin-token-file FILE, set TOKENGATE_ADMIN_TOKEN (the token file's content or your own access token), or set admin.tokenFile in ${c.source}`);
  }
  return { url, token: readTokenFile(c.tokenFile, `admin.tokenFile in ${c.source}`), tokenSource: `admin.tokenFile ${c.tokenFile}` };
}
