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
    out.push(access.length === 0
      ? 'verdict: VALID, but no grant applies: the gateway accepts this token and refuses every session it opens; add a grant that matches it (tokengate grants explains why each one does not)'
      : 'verdict: VALID');
  } else {
    out.push(`verdict: REJECTED (${report.error?.reason ?? 'malformed'}): ${report.error?.message ?? 'the token could not be verified'}`);
  }
  return `${out.join('\n')}\n`;
}

/** Exit statuses (also in the command's help and the README). */
export const VERIFY_EXIT = { valid: 0, rejected: 1, usage: 2, noGrant: 3 } as const;

/** A usage mistake, not a verdict on a token: exit 2 like commander's own usage errors. */
function usageError(message: string): never {
  process.stderr.write(`error: ${message}\n`);
  process.exit(VERIFY_EXIT.usage);
}

export function registerVerifyToken(program: Command): void {
  program
    .command('verify-token')
    .description('check a token as the gateway would: claims, each check, and the grants that apply (the signature is never printed)')
    .argument('[token]', 'the access token, or - to read it from standard input')
    .option('-c, --config <path>', CONFIG_OPTION_HELP)
    .addHelpText('after', '\nExit status: 0 the token is valid and a grant applies, 1 the token is rejected, 2 a usage or config error, 3 the token is valid but no grant applies (every session would be refused).')
    .action(async (tokenArg: string | undefined, opts: { config?: string }) => {
      const noToken = 'no token given: pass it as the argument, or - with the token on standard input (tokengate verify-token - < token.txt)';
      // Without an argument a piped standard input is read; a terminal would wait for nothing.
      if (tokenArg === undefined && process.stdin.isTTY) usageError(noToken);
      const config = loadConfigOrExit(opts.config);
      const verifier = verifierOrExit(config.oidc);
      const token = (tokenArg === undefined || tokenArg === '-' ? await readStdin() : tokenArg).trim();
      if (token === '') usageError(noToken);
      const report = await verifier.inspect(token);
      process.stdout.write(formatTokenReport(report, config));
      if (!report.identity) process.exitCode = VERIFY_EXIT.rejected;
      else process.exitCode = allowedAccess(config, report.identity).length > 0 ? VERIFY_EXIT.valid : VERIFY_EXIT.noGrant;
    });
}
