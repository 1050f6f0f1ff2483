/**
 * One gateway harness for both wire protocols: a provisioned upstream (test/integration/
 * upstreams.ts), the dev OIDC issuer over HTTP, and the gateway wired to both through a YAML
 * config, as an operator would run it. The protocol decides the upstream and the listener;
 * everything else (clients, grants, audit, secrets, tokens, shutdown) is the same.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDevIssuer, type DevIssuer } from '../../src/dev/devIssuer';
import { parseConfig } from '../../src/config/load';
import { startGateway, type Gateway, type GatewayOptions as CoreOptions } from '../../src/core/gateway';
import { MemoryTransport } from '../helpers/memoryTransport';
import { provisionMysql, provisionPostgres, type MysqlNames, type ProvisionedMysql, type ProvisionedPostgres, type UpstreamNames } from './upstreams';
import type { PgCluster } from '../helpers/pgCluster';

export type { MysqlNames, UpstreamNames } from './upstreams';

export type Protocol = 'postgres' | 'mysql';

export const AUDIENCE = 'api://tokengate';

/** Demo clients of the dev issuer, shaped like Okta service apps. */
export const CLIENTS = [
  { clientId: 'svc-reporting', clientSecret: 'reporting-dev-secret', groups: ['db-readers'], scopes: ['db.connect'] },
  { clientId: '0oa1svcbilling', clientSecret: 'billing-dev-secret', groups: [], scopes: ['db.connect', 'db.write'] },
  { clientId: 'svc-nobody', clientSecret: 'nobody-dev-secret', groups: ['marketing'], scopes: ['db.connect'] },
];

/** The upstream's name in the config (and in audit records), per protocol. */
export const UPSTREAM: Record<Protocol, string> = { postgres: 'app-pg', mysql: 'app-my' };

const DEFAULT_POOL: Record<Protocol, string> = {
  postgres: '{ maxConnections: 10, idleTimeout: 5m, maxLifetime: 1h, acquireTimeout: 5s }',
  mysql: '{ maxConnections: 4, idleTimeout: 5m, maxLifetime: 1h, acquireTimeout: 3s }',
};

/** What a test may vary in the gateway's config. */
export interface GatewayOptions {
  /** The upstream's pool: line, as YAML. */
  pool?: string;
  tls?: { certFile: string; keyFile: string };
  allowPlaintextFromLoopback?: boolean;
  /** session.authTimeout (default 5s). */
  authTimeout?: string;
  /** session.expiryGrace (default 0s). */
  expiryGrace?: string;
  /** Appended to the config as is. */
  extraYaml?: string;
  /** More oidc keys, e.g. { jwksCooldown: '1s', fetchTimeout: '1s' }. */
  oidc?: Record<string, string>;
  /** More keys of the listen section, as YAML lines indented by two spaces (e.g. proxyProtocol). */
  listenYaml?: string;
  /** Also listen.admin on 127.0.0.1:0 (the admin API). */
  admin?: boolean;
  /** Passed to startGateway (a clock, a metrics provider...); the audit transport is the harness's. */
  core?: Omit<CoreOptions, 'auditTransport'>;
}

export interface HarnessOptions<P extends Protocol> extends GatewayOptions {
  protocol: P;
}

/** A gateway started by the harness, with its audit records in memory. */
export interface RunningGateway {
  gateway: Gateway;
  audit: MemoryTransport;
  /** The listener's port for the harness protocol. */
  port: number;
}

interface HarnessBase extends RunningGateway {
  issuer: DevIssuer;
  /** Every string that must never appear in a log, an audit line or an error. */
  secrets: string[];
  token(clientId?: string, o?: Parameters<DevIssuer['mintToken']>[0]): Promise<string>;
  /** Another gateway on the same upstream and issuer, with some options changed; stopped by stop(). */
  startGateway(overrides: GatewayOptions): Promise<RunningGateway>;
  stop(): Promise<void>;
}

export interface PgHarness extends HarnessBase {
  protocol: 'postgres';
  names: UpstreamNames;
  /** The throwaway cluster: cluster.psql runs admin SQL as the superuser. */
  cluster: PgCluster;
}

export interface MysqlHarness extends HarnessBase {
  protocol: 'mysql';
  names: MysqlNames;
  /** Runs SQL on the upstream as root (setup and checks). */
  admin(sql: string, values?: unknown[]): Promise<unknown[]>;
}

export type Harness = PgHarness | MysqlHarness;

export function startGatewayHarness(o: HarnessOptions<'postgres'>): Promise<PgHarness>;
export function startGatewayHarness(o: HarnessOptions<'mysql'>): Promise<MysqlHarness>;
export async function startGatewayHarness(o: HarnessOptions<Protocol>): Promise<Harness> {
  const upstream: ProvisionedPostgres | ProvisionedMysql = o.protocol === 'postgres' ? await provisionPostgres() : await provisionMysql();
  const gateways: RunningGateway[] = [];
  let issuer: DevIssuer | undefined;
  const stop = async (): Promise<void> => {
    for (const g of gateways.splice(0).reverse()) await g.gateway.close();
    await issuer?.stop();
    await upstream.stop();
  };
  const start = async (options: GatewayOptions): Promise<RunningGateway> => {
    const yaml = configYaml(o.protocol, upstream, issuer!.issuer, options);
    const config = parseConfig(yaml, '<test>', { RO_PASSWORD: upstream.passwords.ro, RW_PASSWORD: upstream.passwords.rw });
    const audit = new MemoryTransport();
    const gateway = await startGateway(config, { ...options.core, auditTransport: audit });
    const listener = o.protocol === 'postgres' ? gateway.postgres : gateway.mysql;
    const started = { gateway, audit, port: listener!.port };
    gateways.push(started);
    return started;
  };
  let main: RunningGateway;
  try {
    issuer = await startDevIssuer({ audience: AUDIENCE, clients: CLIENTS });
    main = await start(o);
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
  const minted: string[] = [];
  const dev = issuer;
  const base: HarnessBase = {
    ...main,
    issuer: dev,
    get secrets() {
      return [upstream.passwords.ro, upstream.passwords.rw, ...CLIENTS.map((c) => c.clientSecret), ...minted, ...minted.map((t) => t.split('.')[2])];
    },
    async token(clientId = 'svc-reporting', mo = {}) {
      const t = await dev.mintToken({ clientId, ...mo });
      minted.push(t);
      return t;
    },
    startGateway: (overrides) => start({ ...o, ...overrides }),
    stop,
  };
  // Spreading would read the secrets getter once: define the protocol's fields on the object itself.
  if (upstream.protocol === 'postgres') return Object.assign(base, { protocol: 'postgres' as const, names: upstream.names, cluster: upstream.cluster });
  return Object.assign(base, { protocol: 'mysql' as const, names: upstream.names, admin: upstream.admin });
}

function configYaml(protocol: Protocol, upstream: ProvisionedPostgres | ProvisionedMysql, issuer: string, o: GatewayOptions): string {
  const { names } = upstream;
  const name = UPSTREAM[protocol];
  const tls = o.tls ? `\n  certFile: ${o.tls.certFile}\n  keyFile: ${o.tls.keyFile}` : '';
  return `
listen:
  ${protocol}: 127.0.0.1:0${o.admin ? '\n  admin: 127.0.0.1:0' : ''}${o.listenYaml ? `\n${o.listenYaml}` : ''}
tls:
  allowPlaintextFromLoopback: ${o.allowPlaintextFromLoopback ?? true}${tls}
oidc:
  issuer: ${issuer}
  audience: ${AUDIENCE}
  algorithms: [RS256]
  clockSkew: 5s
  maxTokenLifetime: 1h
  requiredScopes: [db.connect]
  groupsClaim: groups
  devIssuer: true${Object.entries(o.oidc ?? {}).map(([k, v]) => `\n  ${k}: ${v}`).join('')}
upstreams:
  ${name}:
    protocol: ${protocol}
    host: ${upstream.host}
    port: ${upstream.port}
    tls: disable
    pool: ${o.pool ?? DEFAULT_POOL[protocol]}
    databases: { app: ${names.app}, analytics: ${names.analytics} }
    roles:
      reader: { user: ${names.ro}, password: \${RO_PASSWORD} }
      writer: { user: ${names.rw}, password: \${RW_PASSWORD} }
grants:
  - name: reporting-agents
    match: { groups: [db-readers] }
    upstream: ${name}
    databases: [app, analytics]
    roles: [reader]
  - name: billing-writer
    match: { clients: [0oa1svcbilling], scopes: [db.write] }
    upstream: ${name}
    databases: [app]
    roles: [writer, reader]
audit:
  file: stdout
  queries: true
  maxQueryBytes: 200
session:
  authTimeout: ${o.authTimeout ?? '5s'}
  expiryGrace: ${o.expiryGrace ?? '0s'}
${/^state:/m.test(o.extraYaml ?? '') ? '' : `state:\n  dir: ${harnessStateDir()}\n`}${o.extraYaml ?? ''}`;
}

let stateDir: string | undefined;

/** Revocations of test gateways go to a directory of this test process, never to /var/lib/tokengate. */
function harnessStateDir(): string {
  if (stateDir === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'tokengate-harness-state-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    stateDir = dir;
  }
  return join(stateDir, `gateway-${randomUUID()}`);
}
