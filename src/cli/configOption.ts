import { loadConfig, resolveConfigPath, ConfigError } from '../config/load';
import type { Config } from '../config/types';

export const CONFIG_OPTION_HELP = 'config file (default ./tokengate.yaml, then /etc/tokengate/tokengate.yaml)';

/** Load the config named by --config (or the default paths); print the problems and exit 2 on error. */
export function loadConfigOrExit(path: string | undefined): Config {
  try {
    return loadConfig(resolveConfigPath(path));
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}
