import type { Command } from 'commander';
import { describeConfig } from '../config/describe';
import { CONFIG_OPTION_HELP, loadConfigOrExit } from './configOption';

export function registerCheckConfig(program: Command): void {
  program
    .command('check-config')
    .description('validate the config and print listeners, upstreams and who may reach what')
    .option('-c, --config <path>', CONFIG_OPTION_HELP)
    .action((opts: { config?: string }) => {
      const config = loadConfigOrExit(opts.config);
      // describeConfig ends with a newline; secrets appear only as their source (env NAME, file PATH).
      process.stdout.write(describeConfig(config));
    });
}
