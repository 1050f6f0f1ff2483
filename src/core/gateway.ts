import type { Config, HostPort } from '../config/types';
import { AuditLog, type AuditSink } from '../audit/auditLog';
import { TokenVerifier } from '../identity/verifier';
import { PgPoolRegistry } from '../postgres/pool';
import { MysqlPoolRegistry, probeMysqlServerVersion } from '../mysql/pool';
import { CancelRegistry } from '../postgres/cancelRegistry';
import { MysqlConnectionRegistry } from '../mysql/connectionIds';
import { MysqlServerVersion } from '../mysql/serverVersion';
import { PgListener } from '../postgres/listener';
import { MysqlListener } from '../mysql/listener';
import { loadServerTlsContext } from '../net/tlsContext';
import { log } from '../log';
import { keepNextTickShape } from '../v8/nextTickShape';

export interface GatewayOptions {
  /** Replace the audit destination (tests capture the lines in memory). */
  auditTransport?: AuditSink;
}

/** A running gateway: its listeners' bound addresses and a way to stop it. */
export interface Gateway {
  postgres?: HostPort;
  mysql?: HostPort;
  audit: AuditLog;
  verifier: TokenVerifier;
  pools: PgPoolRegistry;
  mysqlPools: MysqlPoolRegistry;
  close(): Promise<void>;
}

/** How long the MySQL listener waits at startup for the upstream's greeting (its version string). */
const VERSION_PROBE_TIMEOUT_MS = 3000;

/** Wire config -> verifier, pools, listeners; start listening. */
export async function startGateway(config: Config, opts: GatewayOptions = {}): Promise<Gateway> {
  keepNextTickShape(); // bin/tokengate.js does it first thing; here for programs that embed the gateway
  const audit = new AuditLog(config.audit, opts.auditTransport);
  const verifier = new TokenVerifier(config.oidc);
  const pools = new PgPoolRegistry();
  const cancels = new CancelRegistry();
  const tlsContext = loadServerTlsContext(config.tls);
  // Warm discovery and JWKS, without making startup depend on the IdP being up.
  verifier.prefetch().catch((err: Error) => log.warn(`could not reach the OIDC issuer yet: ${err.message}; will retry on the first connection`));

  let pgListener: PgListener | undefined;
  let postgres: HostPort | undefined;
  if (config.listen.postgres) {
    pgListener = new PgListener(config.listen.postgres, { config, verifier, pools, audit, cancels, tlsContext });
    postgres = await pgListener.listen();
  }

  const mysqlPools = new MysqlPoolRegistry();
  let mysqlListener: MysqlListener | undefined;
  let mysql: HostPort | undefined;
  if (config.listen.mysql) {
    // Clients get the version string of the first MySQL upstream (drivers switch quirks on it).
    const first = Object.values(config.upstreams).find((u) => u.protocol === 'mysql');
    const version = new MysqlServerVersion(first ? () => probeMysqlServerVersion(first.host, first.port, VERSION_PROBE_TIMEOUT_MS) : undefined);
    mysqlListener = new MysqlListener(config.listen.mysql, { config, verifier, pools: mysqlPools, audit, connections: new MysqlConnectionRegistry(), tlsContext }, version);
    mysql = await mysqlListener.listen();
  }

  return {
    postgres,
    mysql,
    audit,
    verifier,
    pools,
    mysqlPools,
    async close() {
      await pgListener?.close();
      await mysqlListener?.close();
      await pools.closeAll();
      await mysqlPools.closeAll();
      await audit.close();
    },
  };
}
