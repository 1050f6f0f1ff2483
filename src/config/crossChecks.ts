import { formatHostPort, isLoopbackHost } from './hostport';
import { ProblemList } from './problems';
import type { Config, Protocol } from './types';

/** Checks that span sections: references between grants and upstreams, issuer rules, TLS pairs. */

function list(names: string[]): string {
  return names.length ? names.join(', ') : '(none)';
}

function checkGrants(config: Config, problems: ProblemList): void {
  const seen = new Map<string, number>();
  config.grants.forEach((g, i) => {
    const path = `grants[${i}]`;
    if (g.name) {
      const first = seen.get(g.name);
      if (first !== undefined) problems.add(`${path}.name`, `grant name "${g.name}" is already used by grants[${first}]; grant names must be unique`);
      else seen.set(g.name, i);
    }
    if (!g.upstream) return;
    const up = config.upstreams[g.upstream];
    if (!up) {
      problems.add(`${path}.upstream`, `upstream "${g.upstream}" is not defined; defined upstreams: ${list(Object.keys(config.upstreams))}`);
      return;
    }
    const aliases = Object.keys(up.databases);
    for (const db of g.databases) {
      if (db !== '*' && !aliases.includes(db)) {
        problems.add(`${path}.databases`, `"${db}" is not a database alias of upstream "${up.name}"; its aliases: ${list(aliases)} (or "*" for all)`);
      }
    }
    const roles = Object.keys(up.roles);
    for (const role of g.roles) {
      if (!roles.includes(role)) {
        problems.add(`${path}.roles`, `role "${role}" is not defined on upstream "${up.name}"; its roles: ${list(roles)}`);
      }
    }
  });
}

/** An agent names only an alias and a protocol, so an alias must identify one upstream per protocol. */
function checkAliases(config: Config, problems: ProblemList): void {
  const owner = new Map<string, string>();
  for (const up of Object.values(config.upstreams)) {
    for (const alias of Object.keys(up.databases)) {
      const key = `${up.protocol}\u0000${alias}`;
      const other = owner.get(key);
      if (other !== undefined) {
        problems.add(`upstreams.${up.name}.databases.${alias}`,
          `alias "${alias}" is also defined on ${up.protocol} upstream "${other}"; an agent could not tell which one it gets, so rename one of them`);
      } else {
        owner.set(key, up.name);
      }
    }
  }
}

function checkUrl(problems: ProblemList, path: string, text: string, what: string): URL | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    problems.add(path, `expected the ${what} URL (e.g. https://example.okta.com/oauth2/default), got ${JSON.stringify(text.slice(0, 80))}`);
    return undefined;
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname))) {
    problems.add(path, `must use https (plain http is accepted only for a loopback development issuer), got ${url.protocol.replace(':', '')}`);
  }
  return url;
}

function checkOidc(config: Config, problems: ProblemList): void {
  const { issuer, jwksUri, devIssuer } = config.oidc;
  if (issuer) {
    const url = checkUrl(problems, 'oidc.issuer', issuer, 'issuer');
    if (url && !url.pathname.includes('/oauth2/') && !devIssuer) {
      problems.add('oidc.issuer',
        'has no /oauth2/ in its path: that is the Okta org authorization server, whose access tokens are not meant for other applications; ' +
        'use a custom authorization server such as https://example.okta.com/oauth2/default (or set devIssuer: true for a development issuer)');
    }
  }
  if (jwksUri) checkUrl(problems, 'oidc.jwksUri', jwksUri, 'JWKS');
}

function checkTls(config: Config, problems: ProblemList): void {
  const { certFile, keyFile, allowPlaintextFromLoopback, allowPlaintextFromAnywhere } = config.tls;
  if (Boolean(certFile) !== Boolean(keyFile)) {
    problems.add(certFile ? 'tls.keyFile' : 'tls.certFile', 'tls.certFile and tls.keyFile must be set together (the PEM certificate chain and its private key)');
  }
  if (!certFile && !keyFile && !allowPlaintextFromLoopback && !allowPlaintextFromAnywhere) {
    problems.add('tls', 'no client could connect: there is no certificate (certFile/keyFile) and plaintext is refused from everywhere; add a certificate or set allowPlaintextFromLoopback: true');
  }
}

function checkListeners(config: Config, problems: ProblemList): void {
  const used = new Map<string, string>();
  for (const key of ['postgres', 'mysql', 'admin'] as const) {
    const hp = config.listen[key];
    if (!hp) continue;
    const addr = formatHostPort(hp);
    const other = used.get(addr);
    if (other) problems.add(`listen.${key}`, `${addr} is already used by listen.${other}; give each listener its own port`);
    else used.set(addr, key);
  }
}

export function crossCheck(config: Config, problems: ProblemList): void {
  checkGrants(config, problems);
  checkAliases(config, problems);
  checkOidc(config, problems);
  checkTls(config, problems);
  checkListeners(config, problems);
}

/** Protocols of upstreams that at least one grant points to. */
export function grantedProtocols(config: Config): Set<Protocol> {
  const out = new Set<Protocol>();
  for (const g of config.grants) {
    const up = config.upstreams[g.upstream];
    if (up) out.add(up.protocol);
  }
  return out;
}
