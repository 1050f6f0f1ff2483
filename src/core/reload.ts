import { ConfigError, type ConfigProblem } from '../config/problems';
import type { Config } from '../config/schema';
import type { ConfigChange, ConfigStore } from './configStore';

/** What a reload did: the sections that changed, or the problems that kept the running config. */
export type ReloadOutcome =
  | { ok: true; changed: string[] }
  | { ok: false; problems: ConfigProblem[] };

/** The names of the sections (and upstreams) a swap changed, for logs and POST /reload. */
export function changedSections(change: ConfigChange): string[] {
  const out: string[] = [];
  for (const [key, value] of Object.entries(change)) {
    if (key === 'any' || key === 'upstreams') continue;
    if (value === true) out.push(key);
  }
  const u = change.upstreams;
  out.push(...u.added.map((n) => `upstreams.${n} (added)`), ...u.removed.map((n) => `upstreams.${n} (removed)`), ...u.changed.map((n) => `upstreams.${n}`));
  return out;
}

/**
 * Reads the config again with `load` and swaps it in; a config that does not validate changes
 * nothing and comes back as its problems.
 */
export function reloadConfig(store: ConfigStore, load: (source: string) => Config): ReloadOutcome {
  let next: Config;
  try {
    next = load(store.current().source);
  } catch (err) {
    if (err instanceof ConfigError) return { ok: false, problems: err.problems };
    return { ok: false, problems: [{ path: '', message: (err as Error).message }] };
  }
  return { ok: true, changed: changedSections(store.swap(next)) };
}
