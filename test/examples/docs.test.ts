/**
 * The commands and configs in docs/okta.md and docs/grants.md, run as written. The only changes
 * are the ones a reader makes for their own site, and each is listed in SUBSTITUTIONS below:
 * the Okta issuer becomes the development issuer (which serves Okta's paths and checks
 * private_key_jwt as Okta does), and host names, ports and file paths become the test's.
 *
 * In order: the grants.md SQL builds the upstream roles in a throwaway PostgreSQL; the okta.md
 * commands make a key pair and get a token with private_key_jwt; a gateway runs on the two
 * pages' YAML; verify-token and psql run through it; and grants.md's check-config and
 * verify-token commands run against `tokengate demo`.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import { startPgCluster, type PgCluster } from '../helpers/pgCluster';
import { makeTestCertificates } from '../helpers/tlsCert';
import { MemoryTransport } from '../helpers/memoryTransport';
import { startDevIssuer, type DevIssuer } from '../../src/dev/devIssuer';
import { loadConfig } from '../../src/config/load';
import { startGateway, type Gateway } from '../../src/core/gateway';
import { BIN, buildOnce, ROOT, runCommand, startBackground } from '../demo/cli';

interface Block {
  lang: string;
  body: string;
}

function blocks(doc: string): Block[] {
  const text = readFileSync(join(ROOT, 'docs', doc), 'utf8');
  return [...text.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => ({ lang: m[1], body: m[2] }));
}

const OKTA_ISSUER = 'https://acme.okta.com/oauth2/aus9tokengate';
const RO_PASSWORD = 'docs-ro-Secret-41c9';
const RW_PASSWORD = 'docs-rw-Secret-8e02';

let cluster: PgCluster;
let issuer: DevIssuer;
let gateway: Gateway;
let audit: MemoryTransport;
let work: string;
let certs: ReturnType<typeof makeTestCertificates>;
let configFile: string;

/** What a reader changes for their own site: the Okta issuer and this machine's hosts, ports and paths. */
const SUBSTITUTIONS: [string, () => string][] = [
  [OKTA_ISSUER, () => issuer.issuer],
  ['/etc/tokengate/tokengate.yaml', () => configFile],
  ['host=tokengate.internal port=6432', () => `host=localhost port=${gateway.postgres!.port}`],
  ['sslrootcert=/etc/ssl/corp-ca.pem', () => `sslrootcert=${certs.caFile}`],
];

const substitute = (s: string): string => SUBSTITUTIONS.reduce((acc, [from, to]) => (acc.includes(from) ? acc.split(from).join(to()) : acc), s);

/** Shell text from the docs, with `tokengate` being this checkout's CLI. */
function sh(script: string, env: Record<string, string> = {}): ReturnType<typeof runCommand> {
  return runCommand('bash', ['-c', `set -eo pipefail\ntokengate() { node ${BIN} "$@"; }\n${script}`], {
    cwd: work, env: { HOME: work, PGPASSWORD: '', PGCONNECT_TIMEOUT: '10', ...env }, timeoutMs: 120_000,
  });
}

function psqlScript(sql: string): ReturnType<typeof runCommand> {
  return runCommand('psql', ['-h', cluster.socketDir, '-p', String(cluster.port), '-U', 'postgres', '-d', 'app', '-XAtq', '-v', 'ON_ERROR_STOP=1'], { input: sql });
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'tg-docs-'));
  certs = makeTestCertificates();
  [cluster] = await Promise.all([startPgCluster(), buildOnce()]);
}, 240_000);

afterAll(async () => {
  await gateway?.close();
  await issuer?.stop();
  await cluster?.stop();
  certs?.cleanup();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('docs/grants.md: least-privilege PostgreSQL roles', () => {
  test('the SQL runs as written, and the check query says t for both roles', async () => {
    const sql = blocks('grants.md').filter((b) => b.lang === 'sql');
    expect(sql).toHaveLength(4);
    for (const b of sql.slice(0, 3)) {
      const r = await psqlScript(b.body);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    }
    const check = await psqlScript(sql[3].body);
    expect([check.code, check.stdout]).toEqual([0, 't\nt\n']);
    // The page's next step: passwords set with \password (ALTER ROLE is what it sends).
    await psqlScript(`ALTER ROLE agent_ro PASSWORD '${RO_PASSWORD}'; ALTER ROLE agent_rw PASSWORD '${RW_PASSWORD}';`);
  });
});

describe('docs/okta.md: a service app with private_key_jwt, through a gateway configured from the docs', () => {
  test('the key pair commands run as written and produce a public JWK for Okta', async () => {
    const [keygen] = blocks('okta.md').filter((b) => b.lang === 'sh');
    const r = await sh(keygen.body);
    expect(r.code).toBe(0); // (openssl draws progress dots on stderr)
    const jwk = JSON.parse(readFileSync(join(work, 'svc-reporting.public.jwk.json'), 'utf8')) as Record<string, unknown>;
    expect(jwk).toMatchObject({ kty: 'RSA', kid: 'svc-reporting-1', alg: 'RS256', use: 'sig', e: 'AQAB' });
    expect(jwk).not.toHaveProperty('d');

    // "Public Keys -> Add key": the issuer knows the app by its client ID and that public key.
    issuer = await startDevIssuer({
      audience: 'api://tokengate',
      clients: [{ clientId: '0oa9svcreporting', jwks: [jwk], groups: [], scopes: ['db.connect'] }],
    });
  });

  test('a gateway runs on the YAML of okta.md and grants.md', async () => {
    const okta = blocks('okta.md').find((b) => b.lang === 'yaml')!;
    const mapping = blocks('grants.md').filter((b) => b.lang === 'yaml').find((b) => b.body.includes('upstreams:'))!;
    const fromDocs = { ...(parseYaml(substitute(okta.body)) as object), ...(parseYaml(mapping.body) as object) } as {
      upstreams: Record<string, Record<string, unknown>>;
    };
    // This machine's database and files instead of db.internal.example.com and /etc/tokengate.
    const up = fromDocs.upstreams['app-pg'];
    Object.assign(up, { host: '127.0.0.1', port: cluster.port, tls: 'disable', databases: { app: 'app' } });
    delete up.caFile;
    writeFileSync(join(work, 'agent_ro'), `${RO_PASSWORD}\n`, { mode: 0o600 });
    writeFileSync(join(work, 'agent_rw'), `${RW_PASSWORD}\n`, { mode: 0o600 });
    up.roles = { reader: { user: 'agent_ro', passwordFile: join(work, 'agent_ro') }, writer: { user: 'agent_rw', passwordFile: join(work, 'agent_rw') } };
    configFile = join(work, 'tokengate.yaml');
    writeFileSync(configFile, stringify({ listen: { postgres: '127.0.0.1:0' }, tls: { certFile: certs.certFile, keyFile: certs.keyFile }, ...fromDocs }));
    audit = new MemoryTransport();
    gateway = await startGateway(loadConfig(configFile), { auditTransport: audit });
    expect(gateway.postgres!.port).toBeGreaterThan(0);
  });

  test('tokengate token with the private key, then verify-token, run as written', async () => {
    const [, token, verify] = blocks('okta.md').filter((b) => b.lang === 'sh');
    const t = await sh(substitute(token.body));
    expect([t.code, t.stderr]).toEqual([0, '']);
    expect(readFileSync(join(work, 'access-token.txt'), 'utf8')).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);

    const v = await sh(substitute(verify.body));
    expect(v.code).toBe(0);
    expect(v.stdout).toContain('"cid": "0oa9svcreporting"');
    expect(v.stdout).toContain('reporting-agent: postgres upstream app-pg, databases [app], roles [reader]');
    expect(v.stdout).toContain('verdict: VALID');
  });

  test('the psql command connects over verify-full as the reader role', async () => {
    const psql = blocks('okta.md').filter((b) => b.lang === 'sh')[3];
    const r = await sh(`${substitute(psql.body).trim()} -XAt -c 'select current_user'`);
    expect(r.stderr).toBe('');
    expect([r.code, r.stdout]).toEqual([0, 'agent_ro\n']);
    const accepted = await audit.waitFor((a) => a.event === 'connection_accepted');
    expect(accepted).toMatchObject({ cid: '0oa9svcreporting', grant: 'reporting-agent', role: 'reader', tls: true });
  });
});

describe('docs/grants.md: testing a grant against the demo', () => {
  test('check-config and verify-token on the demo config, as written', async () => {
    const demoTmp = mkdtempSync(join(tmpdir(), 'tg-docs-demo-'));
    const demo = startBackground(['demo', '--port', '0'], { env: { TMPDIR: demoTmp } });
    try {
      await demo.waitForStdout(/The audit log/, 120_000);
      const [commands] = blocks('grants.md').filter((b) => b.lang === 'sh');
      const r = await runCommand('bash', ['-c', `set -eo pipefail\ncd ${ROOT}\n${commands.body}`], { env: { TMPDIR: demoTmp }, timeoutMs: 120_000 });
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('demo-readers: tokens whose groups include db-readers and that carry the scope db.connect');
      const quoted = (start: string): Block => blocks('grants.md').find((b) => b.lang === 'text' && b.body.startsWith(start))!;
      const promised = quoted('grants that apply:\n  demo-writers:');
      const noGrant = quoted('grants that apply:\n  none');
      expect(r.stdout.endsWith(promised.body)).toBe(true);

      // The page's "no grant matches" output: the demo's config without its grants.
      const config = `${demoTmp}/tokengate-demo/tokengate.yaml`;
      const doc = parseYaml(readFileSync(config, 'utf8')) as Record<string, unknown>;
      const bare = `${demoTmp}/tokengate-demo/no-grants.yaml`;
      writeFileSync(bare, stringify({ ...doc, grants: [] }));
      const none = await runCommand('bash', ['-c', `cd ${ROOT}\nnpx tokengate token --demo --client svc-billing | npx tokengate verify-token --config ${bare} -`], { env: { TMPDIR: demoTmp }, timeoutMs: 60_000 });
      expect(none.code).toBe(3);
      expect(none.stdout.endsWith(noGrant.body)).toBe(true);
    } finally {
      demo.child.kill('SIGINT');
      await demo.exited;
      rmSync(demoTmp, { recursive: true, force: true });
    }
  }, 180_000);
});
