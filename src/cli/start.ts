import type { Command } from 'commander';
import { startGateway } from '../gateway';
import { configWarnings } from '../config/warnings';
import { log } from '../log';
import { CONFIG_OPTION_HELP, loadConfigOrExit } from './configOption';

export function registerStart(program: Command): void {
  program
    .command('start')
    .description('run the gateway')
    .option('-c, --config <path>', CONFIG_OPTION_HELP)
    .action(async (opts: { config?: string }) => {
      const config = loadConfigOrExit(opts.config);
      for (const w of configWarnings(config)) log.warn(w);
      const gateway = await startGateway(config);
      let stopping = false;
      const stop = (signal: string): void => {
        if (stopping) return;
        stopping = true;
        log.info(`${signal} received: closing listeners and ending sessions`);
        gateway.close().then(() => process.exit(0), (err: Error) => {
          log.error(`shutdown failed: ${err.message}`);
          process.exit(1);
        });
      };
      process.on('SIGINT', () => stop('SIGINT'));
      process.on('SIGTERM', () => stop('SIGTERM'));
    });
}
