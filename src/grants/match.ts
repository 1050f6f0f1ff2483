import type { Config, GrantConfig, GrantMatch, UpstreamConfig } from '../config/schema';

/** Who is asking: the verified token's claims that grants match on. Identity satisfies this. */
export interface Principal {
  sub: string;
  clientId?: string;
  groups: string[];
  scopes: string[];
}

function anyOf(wanted: string[], have: string[]): boolean {
  return wanted.some((w) => have.includes(w));
}

export type MatchKey = keyof GrantMatch;

const MATCH_KEYS: readonly MatchKey[] = ['groups', 'clients', 'scopes', 'subjects'];

/** Whether one match key holds; a key with an empty list holds for nobody. */
export function matchKeyHolds(key: MatchKey, wanted: string[], who: Principal): boolean {
  if (wanted.length === 0) return false;
  switch (key) {
    case 'groups':
      return anyOf(wanted, who.groups);
    case 'clients':
      // Okta client-credentials tokens carry cid; others may only have sub = client id.
      return wanted.includes(who.clientId ?? who.sub);
    case 'subjects':
      return wanted.includes(who.sub);
    case 'scopes':
      return wanted.every((s) => who.scopes.includes(s));
  }
}

/**
 * Every key present must hold: groups, clients, subjects are any-of; scopes are all-of.
 * Fails closed: a match with no keys, or a key with an empty list, matches nobody.
 */
export function grantMatches(match: GrantMatch, who: Principal): boolean {
  const keys = MATCH_KEYS.filter((k) => match[k] !== undefined);
  if (keys.length === 0) return false;
  return keys.every((key) => matchKeyHolds(key, match[key] as string[], who));
}

/** The keys of `match` that do not hold for `who`, in a fixed order (for explanations; empty when it matches). */
export function failedMatchKeys(match: GrantMatch, who: Principal): MatchKey[] {
  return MATCH_KEYS.filter((k) => match[k] !== undefined && !matchKeyHolds(k, match[k] as string[], who));
}

/** The grants (in config order) whose match holds for `who`. */
export function matchingGrants(config: Config, who: Principal): GrantConfig[] {
  return config.grants.filter((g) => grantMatches(g.match, who));
}

/** The aliases a grant covers on its upstream ("*" expands to all of them). */
export function grantedAliases(grant: GrantConfig, upstream: UpstreamConfig): string[] {
  const all = Object.keys(upstream.databases);
  return grant.databases.includes('*') ? all : grant.databases.filter((d) => all.includes(d));
}
