import { createHash } from 'node:crypto';
import type { RoleConfig, UpstreamConfig } from '../config/types';

/**
 * A digest of everything that decides how a pooled upstream connection is opened: host, port,
 * TLS, the role's user and secret, the pool's settings. Two configs with the same fingerprint
 * for an (upstream, role) can share connections; a rotated password or a moved host cannot.
 * The secret enters only the hash input, never the result's text.
 */
export function upstreamFingerprint(upstream: UpstreamConfig, role: RoleConfig): string {
  let byRole = cache.get(upstream);
  if (!byRole) {
    byRole = new WeakMap();
    cache.set(upstream, byRole);
  }
  let digest = byRole.get(role);
  if (digest === undefined) {
    const { protocol, host, port, tls, caFile, pool } = upstream;
    const effective = JSON.stringify([protocol, host, port, tls, caFile ?? null, role.user, role.password.reveal(),
      pool.maxConnections, pool.idleTimeoutMs, pool.maxLifetimeMs, pool.acquireTimeoutMs]);
    digest = createHash('sha256').update(effective).digest('base64url').slice(0, 22);
    byRole.set(role, digest);
  }
  return digest;
}

/** Config objects are never changed after loading (a reload builds new ones), so a digest per object is enough. */
const cache = new WeakMap<UpstreamConfig, WeakMap<RoleConfig, string>>();
