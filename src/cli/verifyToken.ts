import type { Command } from 'commander';
import type { Config, OidcConfig } from '../config/schema';
import { TokenVerifier, type TokenReport } from '../identity/verifier';
import { allowedAccess } from '../grants/decide';
import { CONFIG_OPTION_HELP, exitWithSettingsError, loadConfigOrExit } from './configOption';

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write('reading the token from standard input; paste it and press Ctrl-D\n');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The verifier for these settings; settings it refuses are reported like config problems (exit 2). */
export function verifierOrExit(oidc: OidcConfig): TokenVerifier {
  try {
    return new TokenVerifier(oidc);
  } catch (err) {
    return exitWithSettingsError(`cannot verify tokens with these oidc settings: ${(err as Error).message}`);
  }
}

/** The report as printed: header, claims, every check, then the grants or the reason for rejection. Never the signature. */
export function formatTokenReport(report: TokenReport, config: Config): string {
  const out: string[] = [];
  const signed = report.checks.some((c) => c.name === 'signature' && c.ok);
  out.push(`header: ${JSON.stringify(report.header)}`);
  const claimsLabel = signed ? 'claims' : 'claims (signature not verified: do not trust them)';
  out.push(`${claimsLabel}: ${report.claims ? JSON.stringify(report.claims, null, 2) : '(unreadable)'}`);
  out.push('checks:');
  for (const c of report.checks) out.push(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`);
  if (report.identity) {
    const access = allowedAccess(config, report.identity);
    out.push('grants that apply:');
    if (access.length === 0) out.push('  none: this token cannot open any session');
    for (const a of access) out.push(`  ${a.grant}: ${a.protocol} upstream ${a.upstream}, databases [${a.databases.join(', ')}], roles [${a.roles.join(', ')}]`);
    out.push('verdict: VALID');
  } else {
    out.push(`verdict: REJECTED (${report.error?.reason ?? 'malformed'}): ${report.error?.message ?? 'the token could not be verified'}`);
  }
  return `${out.join('\n')}\n`;
}

export function registerVerifyToken(program: Command): void {
  program
    .command('verify-token')
    .description('check a token as the gateway would: claims, each check, and the grants that apply (the signature is never printed)')
    .argument('<token>', 'the access token, or - to read it from standard input')
    .option('-c, --config <path>', CONFIG_OPTION_HELP)
    .action(async (tokenArg: string, opts: { config?: string }) => {
      const config = loadConfigOrExit(opts.config);
      const verifier = verifierOrExit(config.oidc);
      const token = (tokenArg === '-' ? await readStdin() : tokenArg).trim();
      const report = await verifier.inspect(token);
      process.stdout.write(formatTokenReport(report, config));
      process.exitCode = report.identity ? 0 : 1;
    });
}
