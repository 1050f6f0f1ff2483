import type { Config } from '../config/schema';
import type { Identity } from '../identity/types';
import { COM_BINLOG_DUMP, COM_BINLOG_DUMP_GTID, COM_CHANGE_USER, COM_CONNECT_OUT, COM_INIT_DB, COM_PING, COM_PROCESS_INFO, COM_PROCESS_KILL, COM_QUERY, COM_QUIT, COM_REGISTER_SLAVE, COM_RESET_CONNECTION, COM_STMT_CLOSE, COM_STMT_PREPARE, COM_STMT_SEND_LONG_DATA, COM_TABLE_DUMP, ErrorCode } from '../../protocols/mysql/constants';
import type { Interception, MysqlCommand } from './relay';
import type { KillTarget, MysqlConnectionRegistry } from './connectionIds';
import { classifyQuery } from './statements';
import { pickDatabaseHint, routeUse, type Granted } from './routing';
import { GATEWAY_ERROR, NO_DATABASE_SELECTED, UNKNOWN_THREAD, errPayload, okPayload } from './replies';

/** What the policy needs from its session. */
export interface PolicyHost {
  readonly config: () => Config;
  readonly identity: Identity;
  /** The handshake user: the role. */
  readonly role: string;
  readonly connections: MysqlConnectionRegistry;
  /** This session, as KILL sees it. */
  readonly self: KillTarget;
  readonly clientCapabilities: number;
  /** Name of the upstream the session is on; undefined while it has none (no database chosen yet). */
  currentUpstream(): string | undefined;
  /** Databases a session without one may pick (for the "no database selected" hint). */
  databaseChoices(): string[];
  statusFlags(): number;
  /** Switch the session to a granted database; resolves the reply (OK, or ERR when the upstream refuses). */
  useDatabase(target: Granted): Promise<Buffer>;
}

const REPLICATION = new Set([COM_BINLOG_DUMP, COM_BINLOG_DUMP_GTID, COM_REGISTER_SLAVE, COM_TABLE_DUMP, COM_CONNECT_OUT]);
/** Commands that get no response at all. */
const NO_RESPONSE = new Set([COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA]);

const reply = (payload: Buffer, end?: string): Interception => ({ kind: 'reply', payload, end });

/**
 * Decides, for each client command, whether it is relayed or answered by the gateway:
 * COM_QUIT ends the session (the pooled upstream stays open); USE / COM_INIT_DB go through
 * the grants and are translated to the real database name; KILL names tokengate connection
 * ids and reaches only the caller's own sessions; COM_CHANGE_USER and replication are refused.
 * Deciding is free of side effects; what must happen runs in an `async` interception.
 */
export function interceptCommand(host: PolicyHost, cmd: MysqlCommand): Interception {
  const c = cmd.command;
  const connected = host.currentUpstream() !== undefined;
  switch (c.command) {
    case COM_QUIT:
      return { kind: 'quit' };
    case COM_CHANGE_USER:
      return reply(errPayload(ErrorCode.ACCESS_DENIED,
        'tokengate does not support COM_CHANGE_USER (mysql_change_user / changeUser): the session is bound to the token it was opened with; ' +
        'to use another role or a fresh token, close this connection and connect again'), 'change_user_refused');
    case COM_INIT_DB:
      return use(host, c.schema ?? '');
    case COM_PROCESS_KILL:
      return kill(host, 'connection', c.processId ?? 0);
    case COM_QUERY:
    case COM_STMT_PREPARE: {
      const intent = classifyQuery(c.query ?? '');
      const prepared = c.command === COM_STMT_PREPARE;
      if (intent.kind === 'embedded') {
        return reply(errPayload(GATEWAY_ERROR,
          `${intent.keyword} must be sent as a statement of its own through tokengate (it translates database names and connection ids); split this multi-statement query`));
      }
      if (intent.kind === 'unsupported_kill') {
        return reply(errPayload(GATEWAY_ERROR,
          'tokengate supports KILL [QUERY | CONNECTION] <id> with a literal id (the connection id your driver reports, or CONNECTION_ID() of your own session); KILL USER and KILL QUERY ID are not supported'));
      }
      if (prepared && (intent.kind === 'kill' || intent.kind === 'use')) {
        return reply(errPayload(GATEWAY_ERROR, `send ${intent.kind.toUpperCase()} as a plain query, not as a prepared statement, so tokengate can translate it`));
      }
      if (intent.kind === 'use') return use(host, intent.schema);
      if (intent.kind === 'kill') return kill(host, intent.scope, intent.id);
      return connected ? { kind: 'forward' } : noDatabase(host);
    }
    case COM_PROCESS_INFO:
      return reply(errPayload(ErrorCode.UNKNOWN_COMMAND, 'COM_PROCESS_INFO is not relayed by tokengate; run SHOW PROCESSLIST as a query instead'));
    case COM_PING:
    case COM_RESET_CONNECTION:
      return connected ? { kind: 'forward' } : reply(okPayload(host.statusFlags(), host.clientCapabilities));
    default:
      if (REPLICATION.has(c.command)) {
        return reply(errPayload(ErrorCode.UNKNOWN_COMMAND, `${c.name} (replication) is not available through tokengate; connect replicas to the database server directly`));
      }
      if (NO_RESPONSE.has(c.command)) return connected ? { kind: 'forward' } : { kind: 'silent' };
      return connected ? { kind: 'forward' } : noDatabase(host);
  }
}

function noDatabase(host: PolicyHost): Interception {
  return reply(errPayload(NO_DATABASE_SELECTED, `No database selected: ${pickDatabaseHint(host.databaseChoices())}`));
}

function use(host: PolicyHost, alias: string): Interception {
  if (alias === '') return reply(errPayload(NO_DATABASE_SELECTED, 'No database selected: name the database to use'));
  const route = routeUse(host.config(), host.identity, host.role, alias, host.currentUpstream());
  if (!route.ok) return reply(errPayload(route.error, route.message));
  return { kind: 'async', run: async () => reply(await host.useDatabase(route)) };
}

function kill(host: PolicyHost, scope: 'query' | 'connection', id: number): Interception {
  const target = host.connections.find(id, host.identity.sub);
  const ok = (): Interception => reply(okPayload(host.statusFlags(), host.clientCapabilities));
  const unknown = (): Interception => reply(errPayload(UNKNOWN_THREAD, `Unknown thread id: ${id}`));
  if (!target) {
    // An id another tokengate instance issued: it does the KILL, for a session of the same identity.
    const forwarded = host.connections.forwardKill(id, host.identity.sub, scope);
    return forwarded ? { kind: 'async', run: () => forwarded.then((done) => (done ? ok() : unknown())) } : unknown();
  }
  if (target === host.self) {
    // Nothing of this session runs while it sends KILL; killing its own connection ends it, as on the server.
    if (scope === 'query') return ok();
    return reply(errPayload(ErrorCode.CONNECTION_KILLED, 'Connection was killed'), 'killed');
  }
  if (scope === 'connection') {
    return { kind: 'async', run: async () => { target.killConnection(); return ok(); } };
  }
  return {
    kind: 'async',
    run: () => target.killQuery().then(ok, (err: Error) =>
      reply(errPayload(GATEWAY_ERROR, `tokengate could not interrupt the query of connection ${id}: ${err.message}`))),
  };
}
