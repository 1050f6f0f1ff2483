import { Command } from 'commander';
import { registerStart } from './start';
import { registerCheckConfig } from './checkConfig';
import { registerSchema } from './schema';
import { registerVerifyToken } from './verifyToken';
import { registerToken } from './token';
import { registerDemo } from './demo';
import { packageVersion } from '../version';

/** The `tokengate` command line. */
export async function main(argv: string[]): Promise<void> {
  const program = new Command();
  program
    .name('tokengate')
    .description('Identity-aware database gateway: agents connect with an OIDC access token as the password')
    .version(packageVersion(), '-V, --version', 'print the version')
    .showHelpAfterError();
  registerStart(program);
  registerCheckConfig(program);
  registerSchema(program);
  registerVerifyToken(program);
  registerToken(program);
  registerDemo(program);
  await program.parseAsync(argv);
}
