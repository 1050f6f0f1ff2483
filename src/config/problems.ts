/** One thing wrong with the config, located by its key path ("upstreams.app-pg.port"). */
export interface ConfigProblem {
  path: string;
  message: string;
}

/**
 * Every problem found in a config, reported together so a DBA can fix them in one pass.
 * Messages never contain a secret value: only the key path and where the secret was expected.
 */
export class ConfigError extends Error {
  readonly problems: ConfigProblem[];

  constructor(source: string, problems: ConfigProblem[]) {
    const lines = problems.map((p) => `  - ${p.path ? `${p.path}: ` : ''}${p.message}`);
    const count = problems.length === 1 ? '1 problem' : `${problems.length} problems`;
    super(`invalid configuration ${source} (${count}):\n${lines.join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** Collects problems while the config is read; the loader throws once at the end. */
export class ProblemList {
  readonly items: ConfigProblem[] = [];

  add(path: string, message: string): void {
    this.items.push({ path, message });
  }

  get empty(): boolean {
    return this.items.length === 0;
  }
}

/** Joins key paths: ("upstreams", "app-pg") -> "upstreams.app-pg"; indices are pre-formatted as "[0]". */
export function joinPath(base: string, key: string): string {
  if (base === '') return key;
  return key.startsWith('[') ? `${base}${key}` : `${base}.${key}`;
}
