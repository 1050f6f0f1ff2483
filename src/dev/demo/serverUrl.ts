import type { Protocol, UpstreamTlsMode } from '../../config/schema';

/** A real database for `tokengate demo --postgres URL` / `--mysql URL`. */
export interface ServerTarget {
  protocol: Protocol;
  host: string;
  port: number;
  database: string;
  user: string;
  /** Empty when the URL has none (a server that trusts loopback logins; MySQL refuses that later, with help). */
  password: string;
  tls: UpstreamTlsMode;
  /** The URL without its password, for messages and the state file. */
  display: string;
}

const SCHEMES: Record<Protocol, string[]> = { postgres: ['postgres:', 'postgresql:'], mysql: ['mysql:', 'mariadb:'] };
const DEFAULTS: Record<Protocol, { port: number; user: string; example: string }> = {
  postgres: { port: 5432, user: 'postgres', example: 'postgres://postgres@127.0.0.1:5432/test' },
  mysql: { port: 3306, user: 'root', example: 'mysql://agent:secret@127.0.0.1:3306/tokengate_demo' },
};
const SSLMODES: Record<string, UpstreamTlsMode> = { disable: 'disable', allow: 'prefer', prefer: 'prefer', require: 'require' };

/**
 * postgres://user:password@host:port/database?sslmode=... or mysql://user:password@host:port/database.
 * Both gateway roles log in as the URL's user; sslmode may be disable, prefer (default) or require.
 */
export function parseServerUrl(text: string, protocol: Protocol): ServerTarget {
  const d = DEFAULTS[protocol];
  const flag = `--${protocol}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`${flag} expects a URL like ${d.example}`);
  }
  if (!SCHEMES[protocol].includes(url.protocol)) throw new Error(`${flag} expects a ${SCHEMES[protocol][0]}// URL like ${d.example}, got ${url.protocol}//...`);
  if (!url.hostname) throw new Error(`${flag} URL has no host; e.g. ${d.example}`);
  const sslmode = url.searchParams.get('sslmode') ?? 'prefer';
  const tls = SSLMODES[sslmode];
  if (!tls) throw new Error(`${flag} sslmode=${sslmode} is not supported by the demo; use disable, prefer or require (for verify-full write a config: see examples/tokengate.yaml)`);
  for (const key of url.searchParams.keys()) {
    if (key !== 'sslmode') throw new Error(`${flag} URL parameter ${key} is not supported by the demo; only sslmode is`);
  }
  const user = decodeURIComponent(url.username) || d.user;
  const password = decodeURIComponent(url.password);
  const database = decodeURIComponent(url.pathname.replace(/^\//, '')) || (protocol === 'postgres' ? user : '');
  // MySQL: the database is the demo's own (created by it), named here or by --schema.
  if (!database && protocol === 'postgres') throw new Error(`${flag} URL needs a database to map to the alias "app", e.g. ${d.example}`);
  return {
    protocol,
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: url.port ? Number(url.port) : d.port,
    database,
    user,
    password,
    tls,
    display: `${url.protocol}//${encodeURIComponent(user)}@${url.host}${database ? `/${encodeURIComponent(database)}` : ''}`,
  };
}
