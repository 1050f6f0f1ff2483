import type { Command } from 'commander';
import type { Config, GrantConfig, GrantMatch, Protocol } from '../config/schema';
import { formatHostPort } from '../config/hostport';
import { allowedAccess, type Principal } from '../grants/decide';
import { failedMatchKeys, type MatchKey } from '../grants/match';
import { checkScopes } from '../identity/checks';
import { CONFIG_OPTION_HELP, EXIT_BAD_SETTINGS, loadConfigOrExit } from './configOption';

/**
 * `tokengate grants`: from the config alone, what a token with these claims may reach, and why
 * each other grant does not apply. The decision is the gateway's own (src/grants); this only
 * explains it.
 */

export interface ClaimsQuery {
  sub?: string;
  clientId?: string;
  groups: string[];
  scopes: string[];
}

export interface ReachableGrant {
  grant: string;
  upstream: string;
  protocol: Protocol;
  address: string;
  /** Alias the agent asks for -> the real database name. */
  databases: Array<{ alias: string; database: string }>;
  roles: Array<{ role: string; user: string }>;
}

export interface FailedKey {
  key: MatchKey;
  wanted: string[];
  /** Why this key does not hold, in terms of the claims given. */
  detail: string;
}

export interface GrantExplanation {
  principal: Principal;
  /** Set when the gateway refuses such a token before looking at grants (oidc.requiredScopes). */
  refused?: string;
  reachable: ReachableGrant[];
  notApplying: Array<{ grant: string; upstream: string; failed: FailedKey[] }>;
}

/** The claims as the gateway would see them: a client-credentials token's sub is its client id. */
export function principalOf(q: ClaimsQuery): Principal {
  return { sub: q.sub ?? q.clientId ?? '', clientId: q.clientId, groups: q.groups, scopes: q.scopes };
}

const list = (items: string[]): string => `[${items.join(', ')}]`;

function failureDetail(key: MatchKey, wanted: string[], who: Principal): string {
  if (wanted.length === 0) return 'the list is empty, so it matches nobody';
  switch (key) {
    case 'groups':
      return `the token's groups ${list(who.groups)} include none of ${list(wanted)}`;
    case 'clients':
      return who.clientId !== undefined
        ? `client id "${who.clientId}" is not one of ${list(wanted)}`
        : `the token has no client id and its sub "${who.sub}" is not one of ${list(wanted)}`;
    case 'subjects':
      return who.sub === '' ? `no subject given (--subject); it must be one of ${list(wanted)}` : `subject "${who.sub}" is not one of ${list(wanted)}`;
    case 'scopes':
      return `the token lacks ${list(wanted.filter((s) => !who.scopes.includes(s)))} (it has ${list(who.scopes)}; all of ${list(wanted)} are needed)`;
  }
}

function failedKeys(match: GrantMatch, who: Principal): FailedKey[] {
  return failedMatchKeys(match, who).map((key) => {
    const wanted = match[key] ?? [];
    return { key, wanted, detail: failureDetail(key, wanted, who) };
  });
}

export function explainGrants(config: Config, q: ClaimsQuery): GrantExplanation {
  const who = principalOf(q);
  const required = checkScopes({ scp: who.scopes }, config.oidc.requiredScopes);
  const reachable = allowedAccess(config, who).map((a): ReachableGrant => {
    const up = config.upstreams[a.upstream];
    return {
      grant: a.grant,
      upstream: a.upstream,
      protocol: a.protocol,
      address: formatHostPort(up),
      databases: a.databases.map((alias) => ({ alias, database: up.databases[alias] })),
      roles: a.roles.map((role) => ({ role, user: up.roles[role].user })),
    };
  });
  const applying = new Set(reachable.map((r) => r.grant));
  const notApplying = config.grants
    .filter((g: GrantConfig) => !applying.has(g.name))
    .map((g) => ({ grant: g.name, upstream: g.upstream, failed: failedKeys(g.match, who) }));
  return { principal: who, refused: required.ok ? undefined : `oidc.requiredScopes: ${required.detail}`, reachable, notApplying };
}

export function formatExplanation(e: GrantExplanation): string {
  const p = e.principal;
  const out: string[] = [
    `A token with sub=${p.sub || '(none)'}, client=${p.clientId ?? '(none)'}, groups=${list(p.groups)}, scopes=${list(p.scopes)}:`,
  ];
  out.push('');
  if (e.refused) out.push(`is REFUSED by the gateway before any grant is considered: ${e.refused}`, '');
  const reach = e.refused ? 'were it accepted, it could reach' : 'may reach';
  if (e.reachable.length === 0) {
    out.push(`${reach} nothing: no grant matches it`);
  } else {
    out.push(`${reach} (${e.reachable.length} grant${e.reachable.length === 1 ? '' : 's'}):`);
    for (const r of e.reachable) {
      out.push(
        `  ${r.grant}: ${r.protocol} upstream ${r.upstream} (${r.address})`,
        `    databases (ask for -> real name): ${r.databases.map((d) => `${d.alias} -> ${d.database}`).join(', ') || '(none)'}`,
        `    roles (ask for -> upstream user): ${r.roles.map((x) => `${x.role} -> ${x.user}`).join(', ') || '(none)'}`,
      );
    }
  }
  if (e.notApplying.length > 0) {
    out.push('', 'Grants that do not apply:');
    for (const g of e.notApplying) {
      const why = g.failed.length ? g.failed.map((f) => `match.${f.key}: ${f.detail}`) : ['its match has no keys, so it matches nobody'];
      out.push(`  ${g.grant} (upstream ${g.upstream}):`, ...why.map((w) => `    - ${w}`));
    }
  }
  return `${out.join('\n')}\n`;
}

/** "a,b" and repeated options alike -> ["a", "b"]. */
function collect(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(',').map((s) => s.trim()).filter((s) => s !== '')];
}

export function registerGrants(program: Command): void {
  program
    .command('grants')
    .description('explain, from the config alone, what a token with these claims may reach and why the other grants do not apply')
    .option('--groups <a,b>', "the token's groups (comma-separated or repeated)", collect)
    .option('--client <id>', "the token's client id (cid); also its subject when --subject is not given, as in a client-credentials token", undefined)
    .option('--subject <sub>', "the token's subject (sub)")
    .option('--scopes <s1,s2>', "the token's scopes (comma-separated or repeated)", collect)
    .option('-c, --config <path>', CONFIG_OPTION_HELP)
    .option('--json', 'print the explanation as JSON')
    .addHelpText('after', '\nExit status: 0 when such a token may reach at least one database, 1 when it is refused or no grant matches, 2 on a usage or config error.')
    // Commander exits 1 on a usage error; here 1 means "reaches nothing".
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : EXIT_BAD_SETTINGS))
    .action((opts: { groups?: string[]; client?: string; subject?: string; scopes?: string[]; config?: string; json?: boolean }) => {
      const config = loadConfigOrExit(opts.config);
      const e = explainGrants(config, { sub: opts.subject, clientId: opts.client, groups: opts.groups ?? [], scopes: opts.scopes ?? [] });
      process.stdout.write(opts.json ? `${JSON.stringify(e, null, 2)}\n` : formatExplanation(e));
      process.exitCode = e.refused || e.reachable.length === 0 ? 1 : 0;
    });
}
