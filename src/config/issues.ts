import type { z } from 'zod';
import type { ConfigProblem } from './problems';

/**
 * Zod's issues, turned into the problems a DBA reads: one per thing to fix, located by its key
 * path ("upstreams.app-pg.port", "grants[0].match"). The messages themselves are written by the
 * error maps in fields.ts; this module only places them.
 */

type Path = readonly PropertyKey[];
type Issue = z.core.$ZodIssue;
type RawIssue = z.core.$ZodRawIssue;

/** ["grants", 0, "match"] -> "grants[0].match". */
export function formatPath(path: Path): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out;
}

/** A union branch that refused the value's type outright (a list offered a string) says nothing useful. */
function refusedType(branch: readonly Issue[]): boolean {
  return branch.some((issue) => issue.code === 'invalid_type' && issue.path.length === 0);
}

function problemsAt(base: Path, issue: Issue): ConfigProblem[] {
  const path = [...base, ...issue.path];
  switch (issue.code) {
    case 'unrecognized_keys': {
      // Zod reports every unknown key of a mapping as one issue; the mapping's error map wrote
      // one line per key, in the same order, and each key gets its own problem and path.
      const lines = issue.message.split('\n');
      return issue.keys.map((key, i) => ({ path: formatPath([...path, key]), message: lines[i] ?? lines[0] }));
    }
    case 'invalid_key':
      // A record key that is not a valid name: the key schema's messages, at the key's path.
      return issue.issues.flatMap((inner) => problemsAt(path, inner));
    case 'invalid_union': {
      // "a string or a list of strings": when only one form fits the value's type, its own
      // problems are the precise ones (grants[0].match.groups[1] rather than the whole list).
      const fitting = issue.errors.filter((branch) => !refusedType(branch));
      if (fitting.length === 1) return fitting[0].flatMap((inner) => problemsAt(path, inner));
      return [{ path: formatPath(path), message: issue.message }];
    }
    default:
      return [{ path: formatPath(path), message: issue.message }];
  }
}

export function problemsFrom(issues: readonly Issue[]): ConfigProblem[] {
  return issues.flatMap((issue) => problemsAt([], issue));
}

function startsWith(path: Path, prefix: Path): boolean {
  return prefix.length <= path.length && prefix.every((key, i) => path[i] === key);
}

/** Unknown keys say nothing about the values that were read, so they never make a value unreadable. */
function affectsValues(issue: RawIssue): boolean {
  return issue.code !== 'unrecognized_keys';
}

/** True when no problem was found at `path` or above it (what lies inside may still have problems). */
export function reachable(issues: readonly RawIssue[], path: Path): boolean {
  return !issues.some((i) => affectsValues(i) && startsWith(path, i.path ?? []));
}

/**
 * True when the value at `path` was read without any problem, at, above or inside it: it then
 * holds its parsed (output) value. Checks across fields use this to look only at what was read.
 */
export function readable(issues: readonly RawIssue[], path: Path): boolean {
  return reachable(issues, path) && !issues.some((i) => affectsValues(i) && startsWith(i.path ?? [], path));
}
