import { Command, Option } from 'commander';
import { DurationError, parseDuration } from '../../config/duration';
import { CONFIG_OPTION_HELP } from '../configOption';
import { AdminClient } from './client';
import { AdminCliError, AdminRefusedError, AdminUsageError, EXIT_CODES_HELP, EXIT_REFUSED, EXIT_USAGE } from './errors';
import { cell, humanBytes, humanDuration, relative, table, timeOf } from './format';
import { resolveAdminTarget } from './target';
import { parseUntil, UNTIL_HELP } from './until';

/**
 * The admin commands: sessions, kill, revoke, revocations, unrevoke, reload. Each is one call to
 * the admin API; tables for people, the server's JSON with --json.
 */

interface CommonOptions {
  admin?: string;
  adminTokenFile?: string;
  config?: string;
  json?: boolean;
  timeout: string;
}

const DEFAULT_TIMEOUT = '10s';

const TARGET_HELP = `
The admin API address and bearer come from --admin / --admin-token-file, else the environment
variables TOKENGATE_ADMIN_URL / TOKENGATE_ADMIN_TOKEN, else the config's listen.admin and
admin.tokenFile (only those two keys are read). The bearer is never printed.`;

function adminCommand(program: Command, name: string, description: string): Command {
  return program
    .command(name)
    .description(description)
    .option('--admin <url>', 'admin API base URL, e.g. http://127.0.0.1:9187 (default: TOKENGATE_ADMIN_URL, then listen.admin)')
    .option('--admin-token-file <file>', 'file holding the admin bearer (default: TOKENGATE_ADMIN_TOKEN, then admin.tokenFile)')
    .option('-c, --config <path>', CONFIG_OPTION_HELP)
    .option('--json', "print the server's JSON instead of a table")
    .option('--timeout <duration>', 'give up when the admin API has not answered within this', DEFAULT_TIMEOUT)
    .addHelpText('after', `${TARGET_HELP}\n${EXIT_CODES_HELP}`)
    // Commander exits 1 on a usage error; here 1 means "the server refused", so usage errors are 2.
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE));
}

function clientFor(opts: CommonOptions): AdminClient {
  let timeoutMs: number;
  try {
    timeoutMs = parseDuration(opts.timeout);
  } catch (err) {
    if (err instanceof DurationError) throw new AdminUsageError(`--timeout: ${err.message}`);
    throw err;
  }
  if (timeoutMs <= 0) throw new AdminUsageError('--timeout must be longer than 0s');
  return new AdminClient(resolveAdminTarget(opts), timeoutMs);
}

function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value ?? null, null, 2)}\n`);
}

/**
 * Runs a command body; AdminCliErrors become their message on stderr and their exit status.
 * The body calls `admin()` once its own arguments are checked, so a usage error is reported
 * before any question about the admin address or token.
 */
function run<O extends CommonOptions>(body: (admin: () => AdminClient, opts: O) => Promise<void>): (opts: O) => Promise<void> {
  return async (opts: O) => {
    try {
      await body(() => clientFor(opts), opts);
    } catch (err) {
      if (!(err instanceof AdminCliError)) throw err;
      // Scripts get the server's error body on stdout too (reload's problems, say).
      if (opts.json && err instanceof AdminRefusedError && err.body !== undefined) printJson(err.body);
      process.stderr.write(`tokengate: ${err.message}\n`);
      process.exitCode = err.exitCode;
    }
  };
}

/** A path segment from an id the operator typed. */
function segment(id: string): string {
  if (id.trim() === '') throw new AdminUsageError('the id must not be empty');
  return encodeURIComponent(id);
}

/** The list under `key`, or the body itself when the server sent a bare array. */
function listOf(body: unknown, key: string): Record<string, unknown>[] {
  const list = Array.isArray(body) ? body : (body as Record<string, unknown> | undefined)?.[key];
  if (!Array.isArray(list)) throw new AdminCliError(`the admin API answered without a "${key}" list; is the address that of tokengate's admin listener?`, EXIT_REFUSED);
  return list.filter((x): x is Record<string, unknown> => typeof x === 'object' && x !== null);
}

export function formatSessions(sessions: Record<string, unknown>[], now: number): string {
  const rows = sessions.map((s) => {
    const queryStarted = timeOf(s.queryStartedAt);
    const state = queryStarted === undefined ? cell(s.state) : `${cell(s.state)} ${humanDuration(now - queryStarted)}`;
    const expires = timeOf(s.tokenExpiresAt);
    return [
      cell(s.id), cell(s.instance), cell(s.protocol), cell(s.sub), cell(s.cid), cell(s.grant), cell(s.role), cell(s.database), cell(s.remote),
      timeOf(s.startedAt) === undefined ? '-' : humanDuration(now - (timeOf(s.startedAt) as number)),
      state, cell(s.queries), humanBytes(s.bytesFromClient), humanBytes(s.bytesToClient),
      expires === undefined ? '-' : expires <= now ? 'expired' : `in ${humanDuration(expires - now)}`,
    ];
  });
  return table(['ID', 'INSTANCE', 'PROTOCOL', 'SUB', 'CLIENT', 'GRANT', 'ROLE', 'DATABASE', 'REMOTE', 'AGE', 'STATE', 'QUERIES', 'IN', 'OUT', 'TOKEN EXPIRES'], rows);
}

/** What a revocation names: `sub=...`, `client=...` or `jti=...` (top-level, as the API sends it, or under `target`). */
function targetText(r: Record<string, unknown>): string {
  const holder = typeof r.target === 'object' && r.target !== null ? r.target as Record<string, unknown> : r;
  const key = (['sub', 'client', 'jti'] as const).find((k) => holder[k] !== undefined && holder[k] !== null);
  return key ? `${key}=${cell(holder[key])}` : '-';
}

export function formatRevocations(revocations: Record<string, unknown>[], now: number): string {
  const rows = revocations.map((r) => [
    cell(r.id), targetText(r), cell(r.reason), cell(r.by), relative(r.createdAt, now),
    r.until ? relative(r.until, now) : '-',
    r.expiresAt ? relative(r.expiresAt, now) : 'never (until removed)',
  ]);
  return table(['ID', 'TARGET', 'REASON', 'BY', 'CREATED', 'LOCKED UNTIL', 'EXPIRES'], rows);
}

function registerSessions(program: Command): void {
  adminCommand(program, 'sessions', 'list live sessions (who, what grant, role and database, since when, what they are doing)')
    .option('--sub <sub>', "only sessions of this token subject (the token's sub)")
    .option('--client <id>', "only sessions of this client id (the token's cid)")
    .option('--grant <name>', 'only sessions admitted by this grant')
    .addOption(new Option('--protocol <protocol>', 'only sessions of this protocol').choices(['postgres', 'mysql']))
    .action(run(async (admin, opts: CommonOptions & { sub?: string; client?: string; grant?: string; protocol?: string }) => {
      const body = await admin().call({ method: 'GET', path: '/sessions', query: { sub: opts.sub, client: opts.client, grant: opts.grant, protocol: opts.protocol } });
      if (opts.json) return printJson(body);
      const sessions = listOf(body, 'sessions');
      const filtered = opts.sub !== undefined || opts.client !== undefined || opts.grant !== undefined || opts.protocol !== undefined;
      if (sessions.length === 0) process.stdout.write(filtered ? 'no live sessions match\n' : 'no live sessions\n');
      else process.stdout.write(formatSessions(sessions, Date.now()));
      const unanswered = (body as { unanswered?: unknown }).unanswered;
      if (Array.isArray(unanswered) && unanswered.length) process.stderr.write(`instances that did not answer in time (their sessions are missing): ${unanswered.join(', ')}\n`);
    }));
}

function registerKill(program: Command): void {
  adminCommand(program, 'kill', 'end a live session now (its client gets an error saying an operator ended it)')
    .argument('<id>', 'the session id (from tokengate sessions)')
    .action((id: string, opts: CommonOptions) => run(async (admin) => {
      const path = `/sessions/${segment(id)}`;
      const body = await admin().call({ method: 'DELETE', path });
      if (opts.json) return printJson(body);
      process.stdout.write(`ended session ${id}\n`);
    })(opts));
}

interface RevokeOptions extends CommonOptions {
  sub?: string;
  client?: string;
  jti?: string;
  reason?: string;
  until?: string;
}

function registerRevoke(program: Command): void {
  adminCommand(program, 'revoke', "cut off a token subject, a client or one token: live sessions end, and tokens issued until now are refused")
    .option('--sub <sub>', "revoke every token of this subject (the token's sub)")
    .option('--client <id>', "revoke every token of this client id (the token's cid)")
    .option('--jti <jti>', 'revoke the one token with this id')
    .option('--reason <text>', 'why (shown to the agent when it is refused, and in the audit log)')
    .option('--until <time>', UNTIL_HELP)
    .addHelpText('after', `
Without --until, tokens issued after the revocation are admitted again: re-enabling an agent
needs no further step. With --until, every matching token is refused until then (a lock).`)
    .action(run(async (admin, opts: RevokeOptions) => {
      const targets = (['sub', 'client', 'jti'] as const).filter((k) => opts[k] !== undefined);
      if (targets.length !== 1) throw new AdminUsageError('give exactly one of --sub, --client or --jti');
      const key = targets[0];
      const value = opts[key] as string;
      if (value.trim() === '') throw new AdminUsageError(`--${key} must not be empty`);
      const request: Record<string, string> = { [key]: value };
      if (opts.reason !== undefined) request.reason = opts.reason;
      if (opts.until !== undefined) request.until = parseUntil(opts.until, Date.now());
      const body = await admin().call({ method: 'POST', path: '/revocations', body: request });
      if (opts.json) return printJson(body);
      const r = (body ?? {}) as Record<string, unknown>;
      const ended = typeof r.sessionsEnded === 'number' ? r.sessionsEnded : 0;
      const expires = r.expiresAt ? `expires ${relative(r.expiresAt, Date.now())} (${cell(r.expiresAt)})` : `lasts until removed (tokengate unrevoke ${cell(r.id)})`;
      process.stdout.write(`revoked ${key}=${value}: revocation ${cell(r.id)}, ${ended} live session${ended === 1 ? '' : 's'} ended; ${expires}\n`);
    }));
}

function registerRevocations(program: Command): void {
  adminCommand(program, 'revocations', 'list the revocations in force')
    .action(run(async (admin, opts: CommonOptions) => {
      const body = await admin().call({ method: 'GET', path: '/revocations' });
      if (opts.json) return printJson(body);
      const list = listOf(body, 'revocations');
      if (list.length === 0) process.stdout.write('no revocations in force\n');
      else process.stdout.write(formatRevocations(list, Date.now()));
    }));
}

function registerUnrevoke(program: Command): void {
  adminCommand(program, 'unrevoke', 'remove a revocation: the tokens it blocked are admitted again')
    .argument('<id>', 'the revocation id (from tokengate revocations)')
    .action((id: string, opts: CommonOptions) => run(async (admin) => {
      const path = `/revocations/${segment(id)}`;
      const body = await admin().call({ method: 'DELETE', path });
      if (opts.json) return printJson(body);
      process.stdout.write(`removed revocation ${id}\n`);
    })(opts));
}

function registerReload(program: Command): void {
  adminCommand(program, 'reload', 'read the config file again and apply it (as SIGHUP does); a broken file changes nothing')
    .action(run(async (admin, opts: CommonOptions) => {
      const req = { method: 'POST', path: '/reload' } as const;
      const client = admin();
      const res = await client.send(req);
      const body = res.body as { ok?: unknown; changed?: unknown; problems?: unknown } | undefined;
      if (res.status === 400 && body && Array.isArray(body.problems)) {
        if (opts.json) printJson(body);
        const problems = body.problems.map((p: { path?: unknown; message?: unknown }) => `  - ${p.path ? `${cell(p.path)}: ` : ''}${cell(p.message)}`);
        process.stderr.write(`tokengate: reload refused, the running config is kept; fix the config file and reload again:\n${problems.join('\n')}\n`);
        process.exitCode = EXIT_REFUSED;
        return;
      }
      if (res.status < 200 || res.status >= 300) throw client.refused(req, res);
      if (opts.json) return printJson(body);
      const changed = Array.isArray(body?.changed) ? body.changed.map(cell) : [];
      process.stdout.write(changed.length ? `reloaded; changed: ${changed.join(', ')}\n` : 'reloaded; nothing changed\n');
    }));
}

export function registerAdminCommands(program: Command): void {
  registerSessions(program);
  registerKill(program);
  registerRevoke(program);
  registerRevocations(program);
  registerUnrevoke(program);
  registerReload(program);
}
