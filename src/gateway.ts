import type { Config, HostPort } from './config/types';
import { AuditLog } from './audit/auditLog';
import { TokenVerifier } from './identity/verifier';
import { PgPoolRegistry } from './pool/pgPool';
import { CancelRegistry } from './session/cancelRegistry';
import { PgListener } from './server/pgListener';
import { loadServerTlsContext } from './server/tlsContext';
import { log } from './log';
import type winston from 'winston';

export interface GatewayOptions {
  /** Replace the audit destination (tests capture it in memory). */
  auditTransport?: winston.transport;
}

/** A running gateway: its listeners' bound addresses and a way to stop it. */
export interface Gateway {
  postgres?: HostPort;
  audit: AuditLog;
  verifier: TokenVerifier;
  pools: PgPoolRegistry;
  close(): Promise<void>;
}

/** Wire config -> verifier, pools, listeners; start listening. */
export async function startGateway(config: Config, opts: GatewayOptions = {}): Promise<Gateway> {
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

  return {
    postgres,
    audit,
    verifier,
    pools,
    async close() {
      await pgListener?.close();
      await pools.closeAll();
      await audit.close();
    },
  };
}
