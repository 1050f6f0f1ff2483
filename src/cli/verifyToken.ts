import type { Command } from 'commander';
import { TokenVerifier } from '../identity/verifier';
import { allowedAccess } from '../grants/decide';
import { CONFIG_OPTION_HELP, loadConfigOrExit } from './configOption';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export function registerVerifyToken(program: Command): void {
  program
    .command('verify-token')
    .description('check a token as the gateway would: claims, each check, and the grants that apply (the signature is never printed)')
    .argument('<token>', 'the access token, or - to read it from standard input')
    .option('-c, --config <path>', CONFIG_OPTION_HELP)
    .action(async (tokenArg: string, opts: { config?: string }) => {
      const config = loadConfigOrExit(opts.config);
      const token = (tokenArg === '-' ? await readStdin() : tokenArg).trim();
      const report = await new TokenVerifier(config.oidc).inspect(token);
      const out: string[] = [];
      out.push(`header: ${JSON.stringify(report.header)}`);
      out.push(`claims: ${report.claims ? JSON.stringify(report.claims, null, 2) : '(unreadable)'}`);
      out.push('checks:');
      for (const c of report.checks) out.push(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`);
      if (report.identity) {
        const access = allowedAccess(config, report.identity);
        out.push('grants that apply:');
        if (access.length === 0) out.push('  none: this token cannot open any session');
        for (const a of access) out.push(`  ${a.grant}: ${a.protocol} upstream ${a.upstream}, databases [${a.databases.join(', ')}], roles [${a.roles.join(', ')}]`);
        out.push('verdict: VALID');
      } else {
        out.push(`verdict: REJECTED (${report.error?.reason}): ${report.error?.message}`);
      }
      process.stdout.write(out.join('\n') + '\n');
      if (!report.identity) process.exitCode = 1;
    });
}
