/**
 * `tokengate start` runs the online checks once it listens: a failed upstream login is a warning
 * on the operational log with its cause, and the gateway keeps serving. The real binary, the
 * local PostgreSQL (127.0.0.1:5432) and the dev issuer in this process.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DevIssuer } from '../../src/dev/devIssuer';
import { startTestIssuer } from '../helpers/issuer';
import { BIN } from '../helpers/runCli';
import { waitFor } from '../helpers/waitFor';

const PASSWORD = 'startChecksPw-91aa-RECOGNISABLE';

let issuer: DevIssuer;
let dir: string;

beforeAll(async () => {
  issuer = await startTestIssuer();
  dir = mkdtempSync(join(tmpdir(), 'tg-cli-start-checks-'));
});

afterAll(async () => {
  await issuer?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('a role the upstream does not know is logged as a configuration error at startup; the gateway still serves', async () => {
  const configPath = join(dir, 'tokengate.yaml');
  writeFileSync(configPath, `
listen:
  postgres: 127.0.0.1:0
oidc:
  issuer: ${issuer.issuer}
  audience: api://tokengate
  devIssuer: true
upstreams:
  pg-local:
    protocol: postgres
    host: 127.0.0.1
    port: 5432
    tls: disable
    databases: { main: test }
    roles:
      admin: { user: postgres, password: \${TG_START_CHECKS_PW} }
      ghost: { user: tgcli_start_no_such_role, password: \${TG_START_CHECKS_PW} }
state:
  dir: ${dir}
`);
  const child = spawn(process.execPath, [BIN, 'start', '-c', configPath], {
    env: { ...process.env, TG_START_CHECKS_PW: PASSWORD, TOKENGATE_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  try {
    const warning = await waitFor(() => /warn.*startup check failed: upstream pg-local role ghost database main: configuration error \(retrying will not fix it\): .*28000 role \\?"tgcli_start_no_such_role\\?" does not exist/.exec(output)
      ?? (child.exitCode !== null && 'exited'), { what: 'the startup check warning', timeoutMs: 30_000, detail: () => output });
    expect(warning).not.toBe('exited');
    expect(output).toMatch(/postgres listener on 127\.0\.0\.1:\d+/);
    // Only failures are logged, and the working role is not among them.
    expect(output).not.toContain('role admin database main');
    expect(child.exitCode).toBeNull();
  } finally {
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
  }
  expect(output).not.toContain(PASSWORD);
});
