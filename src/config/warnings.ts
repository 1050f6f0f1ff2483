import { statSync } from 'node:fs';
import { grantedProtocols } from './crossChecks';
import { isLoopbackHost } from './hostport';
import { secretFilePath } from './resolveSecret';
import type { Config } from './schema';

/**
 * Things that are allowed but probably not intended, for `check-config` and the startup log.
 * Reads only file metadata (password file permissions), never contents.
 */
export function configWarnings(config: Config): string[] {
  const out: string[] = [];
  const { tls, oidc, listen } = config;

  if (oidc.devIssuer) {
    out.push('oidc.devIssuer is on: the issuer is not checked to be an Okta custom authorization server; use this only for development');
  }
  if (oidc.issuer.endsWith('/')) {
    out.push(`oidc.issuer ends with "/": it must equal the tokens' iss claim exactly, and Okta issuers have no trailing slash`);
  }
  if (tls.allowPlaintextFromAnywhere) {
    out.push('tls.allowPlaintextFromAnywhere is on: tokens sent without TLS from any address can be stolen on the network');
  }
  if (!tls.certFile && !tls.allowPlaintextFromAnywhere) {
    const exposed = (['postgres', 'mysql'] as const).filter((p) => listen[p] && !isLoopbackHost(listen[p].host));
    out.push(exposed.length
      ? `no TLS certificate (tls.certFile/keyFile): clients not on this machine cannot connect to the ${exposed.join(' and ')} listener(s), because tokens are refused over plaintext`
      : 'no TLS certificate (tls.certFile/keyFile): only clients on this machine can connect');
  }
  for (const protocol of grantedProtocols(config)) {
    if (!listen[protocol]) {
      out.push(`grants give access to ${protocol} upstreams, but there is no listen.${protocol}: agents cannot reach them`);
    }
  }
  if (config.grants.length === 0) out.push('there are no grants: every agent will be refused');
  if (config.workers > 1 && !('redis' in config)) {
    out.push(`workers is ${config.workers} without shared state: add a redis: section. Without it each worker keeps its own revocations, ` +
      'session list, cancel keys and connection caps, so a revocation or kill reaches one worker and a cancel request reaches the wrong one');
  }
  const { admin } = config;
  if (!listen.admin && (admin.tokenFile !== undefined || admin.match !== undefined)) {
    out.push('admin.tokenFile or admin.match is set, but there is no listen.admin: the admin API is off');
  }
  if (listen.admin && admin.tokenFile === undefined && admin.match === undefined) {
    out.push('listen.admin is set without admin.tokenFile or admin.match: only /healthz, /readyz and /metrics answer; sessions, kill, revocations and reload are refused (403)');
  }
  if (listen.admin && !isLoopbackHost(listen.admin.host)) {
    out.push(`listen.admin ${listen.admin.host} is reachable from other machines over plain HTTP: admin bearers cross the network unencrypted; listen on 127.0.0.1 and reach it through an SSH tunnel or a TLS-terminating proxy`);
  }
  const referenced = new Set(config.grants.map((g) => g.upstream));
  for (const up of Object.values(config.upstreams)) {
    if (!referenced.has(up.name)) out.push(`upstream "${up.name}" is not used by any grant`);
    if (up.tls === 'disable' && !isLoopbackHost(up.host)) {
      out.push(`upstreams.${up.name}.tls is disable: the gateway's database password and all data cross the network to ${up.host} unencrypted`);
    }
    for (const role of Object.values(up.roles)) {
      const file = secretFilePath(role.password);
      if (!file) continue;
      try {
        const mode = statSync(file).mode;
        if (mode & 0o077) {
          out.push(`upstreams.${up.name}.roles.${role.name}.passwordFile ${file} is readable by group or others (mode ${(mode & 0o777).toString(8)}); run chmod 600 on it`);
        }
      } catch {
        // It was readable at load time; a later stat failure is not worth a warning here.
      }
    }
  }
  return out;
}
