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
