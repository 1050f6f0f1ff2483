import { formatDuration } from './duration';
import { formatHostPort } from './hostport';
import type { Config, GrantConfig, GrantMatch, UpstreamConfig } from './schema';
import { configWarnings } from './warnings';

/**
 * The human report printed by `tokengate check-config`: what listens where, which databases
 * and upstream users exist, and who may reach what. Secrets appear only as their source.
 */

/** "one of a, b" / "a": a list as a sentence. */
function oneOf(values: string[]): string {
  return values.length === 1 ? values[0] : `one of ${values.join(', ')}`;
}

/** A grant's match as a sentence: "tokens whose groups include db-readers and that carry the scope db.connect". */
function matchText(match: GrantMatch): string {
  const parts: string[] = [];
  if (match.groups) parts.push(`whose groups include ${oneOf(match.groups)}`);
  if (match.clients) parts.push(`from the client ${oneOf(match.clients)}`);
  if (match.subjects) parts.push(`whose subject is ${oneOf(match.subjects)}`);
  if (match.scopes) parts.push(`that carry the scope${match.scopes.length > 1 ? 's' : ''} ${match.scopes.join(' and ')}`);
  return parts.length ? `tokens ${parts.join(' and ')}` : 'nobody (empty match)';
}

function grantText(grant: GrantConfig, up: UpstreamConfig | undefined): string[] {
  const target = up ? `${up.name} (${up.protocol} ${formatHostPort(up)})` : `${grant.upstream} (undefined upstream)`;
  const dbs = grant.databases.includes('*') && up ? `* = ${Object.keys(up.databases).join(', ')}` : grant.databases.join(', ');
  const roles = grant.roles.map((r) => (up?.roles[r] ? `${r} (user ${up.roles[r].user})` : r)).join(', ');
  return [
    `  ${grant.name}: ${matchText(grant.match)}`,
    `    -> ${target}`,
    `       databases: ${dbs}`,
    `       roles:     ${roles}`,
  ];
}

function upstreamText(up: UpstreamConfig): string[] {
  const p = up.pool;
  const lines = [
    `  ${up.name}: ${up.protocol} ${formatHostPort(up)}, tls ${up.tls}${up.caFile ? ` (CA ${up.caFile})` : ''}`,
    `    pool: max ${p.maxConnections} connections, idle ${formatDuration(p.idleTimeoutMs)}, lifetime ${formatDuration(p.maxLifetimeMs)}, acquire timeout ${formatDuration(p.acquireTimeoutMs)}`,
    '    databases (alias -> real name):',
    ...Object.entries(up.databases).map(([alias, real]) => `      ${alias} -> ${real}`),
    '    roles (name -> upstream user, password source):',
    ...Object.values(up.roles).map((r) => `      ${r.name} -> ${r.user} (password from ${r.password.source})`),
  ];
  return lines;
}

export function describeConfig(config: Config): string {
  const { listen, tls, oidc, session, audit } = config;
  const lines: string[] = [`tokengate configuration from ${config.source}`, '', 'Listeners:'];
  for (const key of ['postgres', 'mysql', 'admin'] as const) {
    const hp = listen[key];
    lines.push(`  ${key.padEnd(9)}${hp ? formatHostPort(hp) : '(off)'}`);
  }
  lines.push(
    `  client TLS: ${tls.certFile ? `certificate ${tls.certFile}, key ${tls.keyFile}` : 'no certificate'}; ` +
      `plaintext from loopback ${tls.allowPlaintextFromLoopback ? 'allowed' : 'refused'}, from anywhere ${tls.allowPlaintextFromAnywhere ? 'ALLOWED' : 'refused'}`,
    ...(listen.proxyProtocol ? [`  PROXY protocol: required from ${listen.proxyProtocol.trusted.map((n) => n.text).join(', ')}; refused from others`] : []),
    ...(config.workers > 1 ? [`  ${config.workers} worker processes share the listeners (pools are per worker)`] : []),
    '',
    'Identity provider (OIDC):',
    `  issuer:          ${oidc.issuer}${oidc.devIssuer ? ' (development issuer)' : ''}`,
    `  audience:        ${oidc.audience.join(', ')}`,
    `  JWKS:            ${oidc.jwksUri ?? 'discovered from the issuer metadata'}`,
    `  algorithms:      ${oidc.algorithms.join(', ')}`,
    `  required scopes: ${oidc.requiredScopes.length ? oidc.requiredScopes.join(', ') : '(none)'}`,
    `  groups claim:    ${oidc.groupsClaim}`,
    `  clock skew ${formatDuration(oidc.clockSkewMs)}, max token lifetime ${oidc.maxTokenLifetimeMs === undefined ? 'not limited' : formatDuration(oidc.maxTokenLifetimeMs)}`,
    '',
    `Sessions: handshake timeout ${formatDuration(session.authTimeoutMs)}, ended ${formatDuration(session.expiryGraceMs)} after the token expires`,
    `Audit: ${audit.file}, queries ${audit.queries ? `logged (first ${audit.maxQueryBytes} bytes)` : 'not logged'}`,
    '',
    'Upstreams:',
    ...Object.values(config.upstreams).flatMap(upstreamText),
    '',
    'Grants (who may reach what):',
    ...(config.grants.length ? config.grants.flatMap((g) => grantText(g, config.upstreams[g.upstream])) : ['  (none: every agent is refused)']),
  );
  const warnings = configWarnings(config);
  lines.push('', warnings.length ? 'Warnings:' : 'Warnings: none', ...warnings.map((w) => `  - ${w}`));
  return `${lines.join('\n')}\n`;
}
