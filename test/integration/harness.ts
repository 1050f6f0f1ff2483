import { spawn } from 'node:child_process';
import { startPgCluster, type PgCluster } from '../helpers/pgCluster';
import { startDevIssuer, type DevIssuer } from '../../src/dev/devIssuer';
import { parseConfig } from '../../src/config/load';
import { startGateway, type Gateway } from '../../src/core/gateway';
import { MemoryTransport } from '../helpers/memoryTransport';

/** Passwords the gateway holds for the upstream roles; tests prove they never leak. */
export const RO_PASSWORD = 'ro-Secret-7f3a91c2';
export const RW_PASSWORD = 'rw-Secret-0b44d8e6';

export const AUDIENCE = 'api://tokengate';

/** Demo clients of the dev issuer, shaped like Okta service apps. */
export const CLIENTS = [
  { clientId: 'svc-reporting', clientSecret: 'reporting-dev-secret', groups: ['db-readers'], scopes: ['db.connect'] },
  { clientId: '0oa1svcbilling', clientSecret: 'billing-dev-secret', groups: [], scopes: ['db.connect', 'db.write'] },
  { clientId: 'svc-nobody', clientSecret: 'nobody-dev-secret', groups: ['marketing'], scopes: ['db.connect'] },
];

export interface Harness {
  cluster: PgCluster;
  issuer: DevIssuer;
  gateway: Gateway;
  audit: MemoryTransport;
  port: number;
  /** Every string that must never appear in a log, an audit line or an error. */
  secrets: string[];
  token(clientId?: string, o?: Parameters<DevIssuer['mintToken']>[0]): Promise<string>;
  stop(): Promise<void>;
}

export interface HarnessOptions {
  pool?: string;
  tls?: { certFile: string; keyFile: string };
  allowPlaintextFromLoopback?: boolean;
  extraYaml?: string;
  expiryGrace?: string;
}

/**
 * A real PostgreSQL that requires SCRAM, the dev OIDC issuer over HTTP, and the gateway
 * wired to both through a YAML config, as an operator would run it.
 */
export async function startHarness(o: HarnessOptions = {}): Promise<Harness> {
  const cluster = await startPgCluster();
  await cluster.psql(`
    CREATE ROLE agent_ro LOGIN PASSWORD '${RO_PASSWORD}';
    CREATE ROLE agent_rw LOGIN PASSWORD '${RW_PASSWORD}';
    GRANT ALL ON DATABASE app TO agent_ro, agent_rw;
  `);
  await cluster.psql('CREATE DATABASE analytics');
  await cluster.psql(`
    CREATE TABLE items (id int primary key, name text);
    INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 10) g;
    GRANT SELECT ON items TO agent_ro;
    GRANT ALL ON items TO agent_rw;
    GRANT CREATE ON SCHEMA public TO agent_rw;
  `, 'app');
  const issuer = await startDevIssuer({ audience: AUDIENCE, clients: CLIENTS });
  const tls = o.tls ? `\n  certFile: ${o.tls.certFile}\n  keyFile: ${o.tls.keyFile}` : '';
  const yaml = `
listen:
  postgres: 127.0.0.1:0
tls:
  allowPlaintextFromLoopback: ${o.allowPlaintextFromLoopback ?? true}${tls}
oidc:
  issuer: ${issuer.issuer}
  audience: ${AUDIENCE}
  algorithms: [RS256]
  clockSkew: 5s
  maxTokenLifetime: 1h
  requiredScopes: [db.connect]
  groupsClaim: groups
  devIssuer: true
upstreams:
  app-pg:
    protocol: postgres
    host: 127.0.0.1
    port: ${cluster.port}
    tls: disable
    pool: ${o.pool ?? '{ maxConnections: 10, idleTimeout: 5m, maxLifetime: 1h, acquireTimeout: 5s }'}
    databases: { app: app, analytics: analytics }
    roles:
      reader: { user: agent_ro, password: \${APP_RO_PASSWORD} }
      writer: { user: agent_rw, password: \${APP_RW_PASSWORD} }
grants:
  - name: reporting-agents
    match: { groups: [db-readers] }
    upstream: app-pg
    databases: [app, analytics]
    roles: [reader]
  - name: billing-writer
    match: { clients: [0oa1svcbilling], scopes: [db.write] }
    upstream: app-pg
    databases: [app]
    roles: [writer, reader]
audit:
  file: stdout
  queries: true
  maxQueryBytes: 200
session:
  authTimeout: 5s
  expiryGrace: ${o.expiryGrace ?? '0s'}
${o.extraYaml ?? ''}`;
  const config = parseConfig(yaml, '<test>', { APP_RO_PASSWORD: RO_PASSWORD, APP_RW_PASSWORD: RW_PASSWORD });
  const audit = new MemoryTransport();
  const gateway = await startGateway(config, { auditTransport: audit });
  const minted: string[] = [];
  return {
    cluster,
    issuer,
    gateway,
    audit,
    port: gateway.postgres!.port,
    get secrets() {
      return [RO_PASSWORD, RW_PASSWORD, ...CLIENTS.map((c) => c.clientSecret), ...minted, ...minted.map((t) => t.split('.')[2])];
    },
    async token(clientId = 'svc-reporting', mo = {}) {
      const t = await issuer.mintToken({ clientId, ...mo });
      minted.push(t);
      return t;
    },
    async stop() {
      await gateway.close();
      await issuer.stop();
      await cluster.stop();
    },
  };
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run a real client program (psql, python3) and collect its output. */
export function run(cmd: string, args: string[], env: Record<string, string> = {}, input?: string, timeoutMs = 30000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    // A child may exit before reading its input (EPIPE): that is its answer, not a test failure.
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? '');
  });
}

/** psql through the gateway with the token as PGPASSWORD. */
export function psql(h: Harness, token: string, sql: string, o: { user?: string; db?: string; sslmode?: string; extra?: string[]; env?: Record<string, string> } = {}): Promise<RunResult> {
  const conninfo = `host=127.0.0.1 port=${h.port} user=${o.user ?? 'reader'} dbname=${o.db ?? 'app'} sslmode=${o.sslmode ?? 'disable'}`;
  return run('psql', [conninfo, '-X', '-v', 'ON_ERROR_STOP=1', '-At', ...(o.extra ?? []), '-c', sql], { PGPASSWORD: token, PGCONNECT_TIMEOUT: '10', ...(o.env ?? {}) });
}
