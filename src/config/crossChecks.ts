import type { z } from 'zod';
import { readable, reachable } from './issues';
import { isMapping } from './messages';
import type { Config, Protocol } from './schema';

/**
 * Checks between sections: grants name upstreams, their database aliases and roles, and an alias
 * must identify one upstream per protocol. They run on the document as far as it was read, even
 * when other parts have problems, so that all problems come out in one pass; a part that has a
 * problem of its own is left out rather than reported a second time ("role not defined").
 */

type Ctx = z.core.$RefinementCtx;

/** The names defined in one mapping (upstreams, an upstream's databases or roles). */
interface Names {
  /** Defined, though an entry's own settings may have problems. */
  defined: string[];
  /** Written but refused as names: they exist, so nothing is "not defined" because of them. */
  refused: Set<string>;
}

/** What the checks know of one upstream; undefined where that part could not be read. */
interface UpstreamRefs {
  name: string;
  protocol?: Protocol;
  aliases?: Names;
  roles?: Names;
}

/** What the checks know of one grant; undefined where that part could not be read. */
interface GrantRefs {
  index: number;
  name?: string;
  upstream?: string;
  databases?: string[];
  roles?: string[];
}

function list(names: string[]): string {
  return names.length ? names.join(', ') : '(none)';
}

/** The names in the mapping at `path`; undefined when the mapping itself is unusable. */
function namesAt(value: unknown, issues: Ctx['issues'], path: PropertyKey[]): Names | undefined {
  if (!isMapping(value) || !reachable(issues, path)) return undefined;
  const defined = Object.keys(value);
  const refused = new Set<string>();
  for (const issue of issues) {
    const at = issue.path ?? [];
    const key = at[path.length];
    // A refused name is missing from the parsed value, but its problem is filed under it.
    if (typeof key === 'string' && !defined.includes(key) && path.every((p, i) => at[i] === p)) refused.add(key);
  }
  return { defined, refused };
}

interface UpstreamsRefs {
  names: Names;
  /** The defined upstreams. */
  byName: Map<string, UpstreamRefs>;
}

function upstreamRefs(doc: Record<string, unknown>, issues: Ctx['issues']): UpstreamsRefs | undefined {
  const ups = doc.upstreams;
  const names = namesAt(ups, issues, ['upstreams']);
  if (!isMapping(ups) || !names) return undefined;
  const byName = new Map<string, UpstreamRefs>();
  for (const name of names.defined) {
    const up = isMapping(ups[name]) ? ups[name] : {};
    byName.set(name, {
      name,
      protocol: readable(issues, ['upstreams', name, 'protocol']) ? up.protocol as Protocol : undefined,
      aliases: namesAt(up.databases, issues, ['upstreams', name, 'databases']),
      roles: namesAt(up.roles, issues, ['upstreams', name, 'roles']),
    });
  }
  return { names, byName };
}

function grantRefs(doc: Record<string, unknown>, issues: Ctx['issues']): GrantRefs[] {
  const grants = doc.grants;
  if (!Array.isArray(grants) || !reachable(issues, ['grants'])) return [];
  return grants.map((grant: unknown, index) => {
    if (!isMapping(grant) || !reachable(issues, ['grants', index])) return { index };
    const text = (key: string): string | undefined => (readable(issues, ['grants', index, key]) ? grant[key] as string : undefined);
    // A list with a bad item still names the other items: those are checked too.
    const names = (key: string): string[] | undefined => {
      const value = grant[key];
      return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string' && v.trim() !== '') : undefined;
    };
    return { index, name: text('name'), upstream: text('upstream'), databases: names('databases'), roles: names('roles') };
  });
}

function checkGrants(upstreams: UpstreamsRefs, grants: GrantRefs[], ctx: Ctx): void {
  const add = (path: PropertyKey[], message: string): void => ctx.addIssue({ code: 'custom', path, message, input: undefined });
  const seen = new Map<string, number>();
  for (const g of grants) {
    const path = ['grants', g.index];
    if (g.name !== undefined) {
      const first = seen.get(g.name);
      if (first !== undefined) add([...path, 'name'], `grant name "${g.name}" is already used by grants[${first}]; grant names must be unique`);
      else seen.set(g.name, g.index);
    }
    if (g.upstream === undefined || upstreams.names.refused.has(g.upstream)) continue;
    const up = upstreams.byName.get(g.upstream);
    if (!up) {
      add([...path, 'upstream'], `upstream "${g.upstream}" is not defined; defined upstreams: ${list(upstreams.names.defined)}`);
      continue;
    }
    const { aliases, roles } = up;
    if (aliases && g.databases) {
      for (const db of g.databases) {
        if (db !== '*' && !aliases.defined.includes(db) && !aliases.refused.has(db)) {
          add([...path, 'databases'], `"${db}" is not a database alias of upstream "${up.name}"; its aliases: ${list(aliases.defined)} (or "*" for all)`);
        }
      }
    }
    if (roles && g.roles) {
      for (const role of g.roles) {
        if (!roles.defined.includes(role) && !roles.refused.has(role)) {
          add([...path, 'roles'], `role "${role}" is not defined on upstream "${up.name}"; its roles: ${list(roles.defined)}`);
        }
      }
    }
  }
}

/** An agent names only an alias and a protocol, so an alias must identify one upstream per protocol. */
function checkAliases(upstreams: UpstreamsRefs, ctx: Ctx): void {
  const owner = new Map<string, string>();
  for (const up of upstreams.byName.values()) {
    if (!up.protocol || !up.aliases) continue;
    for (const alias of up.aliases.defined) {
      const key = `${up.protocol}\u0000${alias}`;
      const other = owner.get(key);
      if (other !== undefined) {
        ctx.addIssue({
          code: 'custom', path: ['upstreams', up.name, 'databases', alias], input: undefined,
          message: `alias "${alias}" is also defined on ${up.protocol} upstream "${other}"; an agent could not tell which one it gets, so rename one of them`,
        });
      } else {
        owner.set(key, up.name);
      }
    }
  }
}

/** A superRefine over the whole document (see whenReadable: it runs even when other parts have problems). */
export function checkReferences(doc: object, ctx: Ctx): void {
  if (!isMapping(doc)) return;
  const upstreams = upstreamRefs(doc, ctx.issues);
  if (!upstreams) return;
  checkGrants(upstreams, grantRefs(doc, ctx.issues), ctx);
  checkAliases(upstreams, ctx);
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
