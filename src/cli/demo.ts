import type { Command } from 'commander';
import { DemoError, startDemo } from '../dev/demo/runDemo';
import { DemoStateError } from '../dev/demo/stateFile';
import { log } from '../log';

/** `tokengate demo`: everything on loopback in one process; Ctrl-C stops it and exits 0. */
export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('run a development issuer, a database and the gateway on this machine, and print commands to try')
    .option('--port <port>', 'the gateway\'s PostgreSQL port (0 = any free port)', '6432')
    .option('--postgres <url>', 'use this PostgreSQL instead of the embedded one, e.g. postgres://postgres@127.0.0.1:5432/test (both roles log in with its credentials; the demo creates the schema --schema there with its sample tables)')
    .option('--mysql <url>', 'also serve this MySQL/MariaDB on a MySQL listener, e.g. mysql://agent:secret@127.0.0.1:3306/tokengate_demo (both roles log in as its user; the demo creates that database with its sample tables)')
    .option('--mysql-port <port>', 'the gateway\'s MySQL port, with --mysql (0 = any free port)', '6033')
    .option('--schema <name>', 'with --postgres/--mysql: the schema (MySQL: database) the demo creates for its sample tables; default tokengate_demo; it never touches one it did not create')
    .action(async (opts: { port: string; mysqlPort: string; postgres?: string; mysql?: string; schema?: string }) => {
      const notice = (msg: string): void => void process.stderr.write(`tokengate demo: ${msg}\n`);
      let demo;
      try {
        demo = await startDemo({ port: Number(opts.port), mysqlPort: Number(opts.mysqlPort), postgres: opts.postgres, mysql: opts.mysql, schema: opts.schema, notice });
      } catch (err) {
        notice((err as Error).message);
        process.exit(err instanceof DemoError || err instanceof DemoStateError ? 2 : 1);
      }
      process.stdout.write(`${demo.banner}\n`);
      const running = demo;
      let stopping = false;
      const stop = (signal: string): void => {
        if (stopping) {
          notice(`${signal} again: exiting without waiting`);
          process.exit(130);
        }
        stopping = true;
        notice(`${signal}: stopping the gateway, the database and the issuer`);
        running.stop().then(
          () => process.exit(0),
          (err: Error) => {
            log.error(`demo shutdown failed: ${err.message}`);
            process.exit(1);
          },
        );
      };
      process.on('SIGINT', () => stop('SIGINT'));
      process.on('SIGTERM', () => stop('SIGTERM'));
    });
}
