import type { Command } from 'commander';
import { describeConfig } from '../config/describe';
import { CONFIG_OPTION_HELP, loadConfigOrExit } from './configOption';
import { formatCheckResults, runOnlineChecks } from './onlineChecks';

export function registerCheckConfig(program: Command): void {
  program
    .command('check-config')
    .description('validate the config and print listeners, upstreams and who may reach what')
    .option('-c, --config <path>', CONFIG_OPTION_HELP)
    .option('--online', "also log in to every upstream role on every database and fetch the issuer's discovery document and keys")
    .addHelpText('after', '\nExit status: 0 valid (and, with --online, every check passed); 1 an online check failed; 2 the config is invalid.')
    .action(async (opts: { config?: string; online?: boolean }) => {
      const config = loadConfigOrExit(opts.config);
      // describeConfig ends with a newline; secrets appear only as their source (env NAME, file PATH).
      process.stdout.write(describeConfig(config));
      if (!opts.online) return;
      const results = await runOnlineChecks(config);
      process.stdout.write(`\n${formatCheckResults(results)}`);
      if (results.some((r) => !r.ok)) process.exitCode = 1;
    });
}
