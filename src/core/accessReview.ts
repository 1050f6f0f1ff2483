import type { Config } from '../config/schema';
import { decide } from '../grants/decide';
import { mysqlAliasesFor } from '../mysql/routing';
import type { AdmittedAs, LiveSession, SessionRegistry } from './sessionRegistry';

/**
 * Continuous access evaluation: after a config swap, every live session's access is decided
 * again by the one access decision (grants/decide) with the identity it was admitted with. A
 * session the new grants no longer admit to its role and database on its upstream ends with
 * its protocol's error; the others are not touched.
 */

/** Why `session` may no longer continue under `config`, or undefined when it may. */
export function withdrawal(config: Config, session: AdmittedAs, protocol: LiveSession['protocol']): string | undefined {
  const { identity, access } = session;
  if (protocol === 'mysql' && access.database === '') {
    // A MySQL session that has not chosen a database yet: it needs one it may still USE.
    if (mysqlAliasesFor(config, identity, access.role).length > 0) return undefined;
    return `no grant allows role "${access.role}" on any MySQL database any more`;
  }
  const d = decide(config, identity, protocol, access.database, access.role);
  if (!d.ok) return d.message;
  if (d.upstream.name !== access.upstream) return `database "${access.database}" now belongs to upstream "${d.upstream.name}"; reconnect to reach it`;
  return undefined;
}

/** What the agent is told when its session ends this way. */
export function withdrawnMessage(why: string): string {
  return `your grant was withdrawn by a configuration change and tokengate ended this session: ${why}`;
}

/** Ends every live session that `config` no longer admits; returns the ids it ended. */
export function endWithdrawnSessions(config: Config, registry: SessionRegistry): string[] {
  const ended: string[] = [];
  for (const s of registry.select()) {
    const admitted = s.admitted();
    if (!admitted) continue; // still in its handshake: admission reads the new config
    const why = withdrawal(config, admitted, s.protocol);
    if (why === undefined) continue;
    s.end('grant_withdrawn', withdrawnMessage(why));
    ended.push(s.id);
  }
  return ended;
}
