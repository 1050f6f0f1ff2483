import type { CheckResult } from '../../../admin/readiness';
import { LocalSessionDirectory, type SessionDirectory } from '../../../admin/sessionDirectory';
import type { RedisConfig } from '../../../config/schema';
import { log } from '../../../log';
import type { MysqlConnectionRegistry } from '../../../mysql/connectionIds';
import { troubleLog } from '../../../throttledLog';
import type { Clock } from '../../clock';
import type { InstanceIdentity } from '../../instance';
import type { SessionRegistry } from '../../sessionRegistry';
import type { SharedState } from '../index';
import { PeerBus } from './bus';
import { InstanceRegistry } from './instances';
import { RedisKeys } from './keys';
import { RedisConnectionLeases } from './leases';
import { RedisLink } from './link';
import { RedisRevocations } from './revocations';
import { InstanceCancelKeys, InstanceConnectionIds, MYSQL_KILL, PG_CANCEL, type MysqlKillMessage, type PgCancelMessage } from './routing';
import { ClusterSessionDirectory } from './sessions';

/**
 * The shared state of several gateway instances in Redis (redis: in the config), and what an
 * instance does to keep it: announce itself, renew its connection leases and re-read the
 * revocations on a heartbeat (a third of leaseTtl), answer other instances' requests.
 */

/** What the owner of a forwarded request acts on: this instance's sessions. */
export interface LocalSessions {
  registry: SessionRegistry;
  /** The MySQL listener's connection ids (a forwarded KILL), when it listens. */
  mysql?: MysqlConnectionRegistry;
}

export class RedisState {
  readonly state: SharedState;
  readonly link: RedisLink;
  readonly #keys: RedisKeys;
  readonly #bus: PeerBus;
  readonly #revocations: RedisRevocations;
  readonly leases: RedisConnectionLeases;
  readonly #instances: InstanceRegistry;
  #heartbeat?: NodeJS.Timeout;
  #stopped = false;

  constructor(readonly config: RedisConfig, readonly instance: InstanceIdentity, private readonly clock: Clock) {
    this.link = new RedisLink(config);
    this.#keys = new RedisKeys(config.keyPrefix);
    this.#bus = new PeerBus(this.link, this.#keys, instance, config.commandTimeoutMs);
    this.#revocations = new RedisRevocations(this.link, this.#keys, instance.key, clock);
    this.leases = new RedisConnectionLeases(this.link, this.#keys, instance.key, { ttlMs: config.leaseTtlMs, failOpen: this.failOpen });
    this.#instances = new InstanceRegistry(this.link, this.#keys, instance, config.leaseTtlMs);
    this.state = {
      revocations: this.#revocations,
      leases: this.leases,
      cancelKeys: new InstanceCancelKeys(instance, this.#bus),
      connectionIds: new InstanceConnectionIds(instance, this.#bus),
    };
    this.link.subscriber.on('message', (channel: string, text: string) => {
      if (channel === this.#keys.revocationChannel) this.#revocations.receive(text);
      else void this.#bus.receive(channel, text);
    });
    this.link.on('up', () => void this.#beat());
    this.link.on('resubscribed', () => void this.#beat());
    this.link.on('down', (cause) => {
      troubleLog.report('error', `redis:down:${instance.id}`, `instance ${instance.id} lost Redis (${this.link.where}): ${cause}. ${this.failOpen
        ? 'redis.onUnavailable is fail-open: new connections are served with this instance\'s own state (connection caps count only its sessions, revocations made elsewhere meanwhile are not seen)'
        : 'redis.onUnavailable is fail-closed: new connections are refused until Redis is back'}; live sessions continue, revocations already known keep applying`);
    });
  }

  get failOpen(): boolean {
    return this.config.onUnavailable === 'fail-open';
  }

  /** Connects (within connectTimeout), subscribes, reads the revocations; without Redis the gateway starts anyway and recovers when Redis comes. */
  async start(): Promise<void> {
    void this.link.subscriber.subscribe(this.#keys.revocationChannel, ...this.#bus.channels).catch(() => undefined);
    const up = await this.link.start();
    if (up) await this.#beat();
    else {
      log.error(`cannot reach Redis (${this.link.where}) within redis.connectTimeout: ${this.link.failure}; ${this.failOpen
        ? 'serving with this instance\'s own state (fail-open) until it is reachable'
        : 'new connections are refused (fail-closed) until it is reachable'}`);
    }
    const every = Math.max(Math.floor(this.config.leaseTtlMs / 3), 100);
    this.#heartbeat = setInterval(() => void this.#beat(), every);
    this.#heartbeat.unref();
  }

  /** Wires the handlers of forwarded requests to this instance's sessions; returns the directory the admin API lists from. */
  attach(local: LocalSessions): SessionDirectory {
    const cancelKeys = this.state.cancelKeys;
    this.#bus.handle(PG_CANCEL, (body) => {
      const m = body as PgCancelMessage;
      const id = cancelKeys.lookup(m.processId, Buffer.from(m.secretKey, 'hex'));
      if (id !== undefined) local.registry.get(id)?.cancelQuery().catch(() => undefined);
      return undefined;
    });
    this.#bus.handle(MYSQL_KILL, async (body) => {
      const m = body as MysqlKillMessage;
      const target = local.mysql?.find(m.id, m.sub);
      if (!target) return false;
      if (m.scope === 'connection') target.killConnection();
      else await target.killQuery();
      return true;
    });
    return new ClusterSessionDirectory(new LocalSessionDirectory(local.registry, this.instance.id), this.link, this.#bus, this.#instances, this.clock);
  }

  /** For Admission: why new sessions are refused now (fail-closed without Redis). */
  refusal(): string | undefined {
    if (this.link.available || this.failOpen) return undefined;
    return 'tokengate cannot reach its shared state (Redis), which it needs to check revocations and connection limits across instances, so it accepts no new sessions for now; retry in a moment, and if it persists tell the operator';
  }

  /** GET /readyz "redis". */
  check(): CheckResult {
    if (this.link.available) return { ok: true, detail: `connected to ${this.link.where} as instance ${this.instance.id}` };
    if (this.failOpen) return { ok: true, detail: `${this.link.failure}; serving with this instance's own state (redis.onUnavailable: fail-open)` };
    return { ok: false, detail: `${this.link.failure}; new connections are refused (redis.onUnavailable: fail-closed)` };
  }

  /** Stops the heartbeat, leaves the instance list and closes the connections (leases are given back by the sessions as they end). */
  async close(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#heartbeat);
    if (this.link.available) await this.#instances.leave().catch(() => undefined);
    await this.link.close();
  }

  /** Drops the connections without giving anything back and stops renewing: what other instances see of a crash. */
  abort(): void {
    this.#stopped = true;
    clearInterval(this.#heartbeat);
    this.link.abort();
  }

  async #beat(): Promise<void> {
    if (this.#stopped || !this.link.available) return;
    try {
      await this.#instances.announce(this.clock.now());
      await this.#instances.others(this.clock.now()); // prunes departed instances, reports a duplicated id
      await this.leases.renew();
      await this.#revocations.resync();
    } catch (err) {
      troubleLog.report('warn', 'redis:heartbeat', `the heartbeat to Redis (${this.link.where}) failed: ${(err as Error).message}`);
    }
  }
}
