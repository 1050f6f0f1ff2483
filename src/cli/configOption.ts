import { loadConfig, resolveConfigPath, ConfigError } from '../config/load';
import type { Config } from '../config/schema';

export const CONFIG_OPTION_HELP = 'config file (default ./tokengate.yaml, then /etc/tokengate/tokengate.yaml)';

/** Exit status when the config or a setting derived from it is unusable (as for an invalid config). */
export const EXIT_BAD_SETTINGS = 2;

/** Load the config named by --config (or the default paths); print the problems and exit 2 on error. */
export function loadConfigOrExit(path: string | undefined): Config {
  try {
    return loadConfig(resolveConfigPath(path));
  } catch (err) {
    if (err instanceof ConfigError) exitWithSettingsError(err.message);
    throw err;
  }
}

/** Print why the settings cannot be used (to stderr, one message) and exit 2. */
export function exitWithSettingsError(message: string): never {
  process.stderr.write(`${message.trimEnd()}\n`);
  process.exit(EXIT_BAD_SETTINGS);
}
