import type { Config, GrantConfig, Protocol, RoleConfig, UpstreamConfig } from '../config/schema';
import { grantedAliases, matchingGrants, type Principal } from './match';

/**
 * The one place that decides "may this token use this role on this database".
 * Pure: config and claims in, a decision out. Denials explain what the agent may do instead.
 */

export { matchingGrants, grantMatches, grantedAliases } from './match';
export type { Principal } from './match';

export type DenialReason = 'unknown_database' | 'database_not_granted' | 'role_not_granted' | 'no_matching_grant';

export type Decision =
  | { ok: true; grant: GrantConfig; upstream: UpstreamConfig; role: RoleConfig; alias: string; /** Real database name. */ database: string }
  | { ok: false; reason: DenialReason; message: string };

export interface AccessEntry {
  grant: string;
  upstream: string;
  protocol: Protocol;
  databases: string[];
  roles: string[];
}

/** Claims are echoed back to their owner in denials, but bounded so a huge token cannot make a huge message. */
const MAX_SHOWN_ITEMS = 20;
const MAX_SHOWN_CHARS = 120;

function clip(s: string): string {
  return s.length > MAX_SHOWN_CHARS ? `${s.slice(0, MAX_SHOWN_CHARS)}...` : s;
}

function shownList(items: string[]): string {
  const head = items.slice(0, MAX_SHOWN_ITEMS).map(clip).join(', ');
  return items.length > MAX_SHOWN_ITEMS ? `${head}, ... (+${items.length - MAX_SHOWN_ITEMS} more)` : head;
}

function unique(items: string[]): string[] {
  return [...new Set(items)];
}

/** What `who` may reach, one entry per matching grant (optionally only for one protocol). */
export function allowedAccess(config: Config, who: Principal, protocol?: Protocol): AccessEntry[] {
  const out: AccessEntry[] = [];
  for (const grant of matchingGrants(config, who)) {
    const upstream = config.upstreams[grant.upstream];
    if (!upstream || (protocol && upstream.protocol !== protocol)) continue;
    out.push({
      grant: grant.name,
      upstream: upstream.name,
      protocol: upstream.protocol,
      databases: grantedAliases(grant, upstream),
      roles: grant.roles.filter((r) => upstream.roles[r] !== undefined),
    });
  }
  return out;
}

function deny(reason: DenialReason, message: string): Decision {
  return { ok: false, reason, message };
}

function describePrincipal(who: Principal): string {
  return `sub=${clip(who.sub)}, client=${who.clientId ? clip(who.clientId) : '(none)'}, groups=[${shownList(who.groups)}], scopes=[${shownList(who.scopes)}]`;
}

function grantedDatabasesHint(access: AccessEntry[], protocol: Protocol): string {
  const dbs = unique(access.flatMap((a) => a.databases));
  return dbs.length ? `your grants allow databases: ${shownList(dbs)}` : `your grants allow no ${protocol} databases`;
}

export function decide(config: Config, who: Principal, protocol: Protocol, databaseAlias: string, roleName: string): Decision {
  const grants = matchingGrants(config, who);
  if (grants.length === 0) {
    return deny('no_matching_grant',
      `no grant matches your token (${describePrincipal(who)}); ask a DBA to add a grant for one of your groups or your client id`);
  }

  // Aliases are unique per protocol (the loader enforces it), so at most one upstream owns this alias.
  const upstream = Object.values(config.upstreams).find(
    (u) => u.protocol === protocol && Object.prototype.hasOwnProperty.call(u.databases, databaseAlias));
  const access = allowedAccess(config, who, protocol);
  if (!upstream) {
    const known = unique(Object.values(config.upstreams).filter((u) => u.protocol === protocol).flatMap((u) => Object.keys(u.databases)));
    return deny('unknown_database',
      `database "${clip(databaseAlias)}" does not exist on this gateway; known databases: ${shownList(known) || '(none)'}; ${grantedDatabasesHint(access, protocol)}`);
  }

  const onDatabase = grants.filter((g) => g.upstream === upstream.name && grantedAliases(g, upstream).includes(databaseAlias));
  if (onDatabase.length === 0) {
    return deny('database_not_granted', `database "${databaseAlias}" is not granted to you; ${grantedDatabasesHint(access, protocol)}`);
  }

  const role = Object.prototype.hasOwnProperty.call(upstream.roles, roleName) ? upstream.roles[roleName] : undefined;
  const grant = role && onDatabase.find((g) => g.roles.includes(roleName));
  if (!role || !grant) {
    const roles = unique(onDatabase.flatMap((g) => g.roles.filter((r) => upstream.roles[r] !== undefined)));
    return deny('role_not_granted',
      `role "${clip(roleName)}" is not granted to you on database "${databaseAlias}"; your grants allow: ${shownList(roles)}`);
  }

  return { ok: true, grant, upstream, role, alias: databaseAlias, database: upstream.databases[databaseAlias] };
}
