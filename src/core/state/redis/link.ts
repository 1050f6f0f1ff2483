import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { RedisConfig } from '../../../config/schema';
import { log } from '../../../log';
import { troubleLog } from '../../../throttledLog';

/**
 * The gateway's connections to Redis: one for commands, one for pub/sub (a subscribed
 * connection can do nothing else). Commands are never queued while Redis is away
 * (enableOfflineQueue off): a login must learn at once that Redis cannot be asked, to refuse or
 * serve by redis.onUnavailable, instead of waiting. Both connections reconnect by themselves.
 */

export type RedisClient = Redis | Cluster;

interface LinkEvents {
  /** The command connection is ready (at start, and after every reconnect). */
  up: [];
  /** It was lost; the cause. */
  down: [string];
  /** The pub/sub connection is subscribed again after a reconnect (messages may have been missed). */
  resubscribed: [];
}

/** How long reconnection attempts wait at most between two tries. */
const MAX_RETRY_DELAY_MS = 2000;

export class RedisLink extends EventEmitter<LinkEvents> {
  readonly client: RedisClient;
  readonly subscriber: RedisClient;
  /** Where Redis is, for messages (never with a password). */
  readonly where: string;
  #up = false;
  #downSince?: number;
  #lastError = 'not connected yet';
  #closed = false;
  /** How many times the command connection was lost (for metrics). */
  disconnects = 0;

  constructor(readonly config: RedisConfig) {
    super();
    this.where = describe(config);
    this.client = connect(config, false);
    this.subscriber = connect(config, true);
    this.client.on('ready', () => this.#ready());
    this.client.on('error', (err: Error) => this.#error(err));
    this.client.on('close', () => this.#lost());
    this.client.on('end', () => this.#lost());
    this.subscriber.on('error', (err: Error) => this.#error(err));
    let subscribedOnce = false;
    this.subscriber.on('ready', () => {
      if (subscribedOnce) this.emit('resubscribed');
      subscribedOnce = true;
    });
  }

  get available(): boolean {
    return this.#up;
  }

  /** Why Redis is unavailable (and since when), for /readyz and refusals. */
  get failure(): string {
    const since = this.#downSince === undefined ? '' : ` since ${new Date(this.#downSince).toISOString()}`;
    return `Redis (${this.where}) is unreachable${since}: ${this.#lastError}`;
  }

  /** Starts both connections; resolves true once commands can be sent, false after connectTimeout (they keep trying). */
  async start(): Promise<boolean> {
    const ready = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), this.config.connectTimeoutMs);
      timer.unref();
      this.once('up', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    this.client.connect().catch(() => undefined);
    this.subscriber.connect().catch(() => undefined);
    return ready;
  }

  /** Closes both connections (QUIT when possible). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([this.client, this.subscriber].map((c) => c.quit().catch(() => c.disconnect())));
  }

  /** Drops both connections at once, without a word to Redis and without reconnecting: what a crash looks like from Redis. */
  abort(): void {
    this.#closed = true;
    this.client.disconnect();
    this.subscriber.disconnect();
  }

  #ready(): void {
    if (this.#up) return;
    const wasDown = this.#downSince !== undefined;
    this.#up = true;
    this.#downSince = undefined;
    this.#lastError = 'the connection was closed';
    if (wasDown) log.warn(`Redis (${this.where}) is reachable again: shared state is back in use`);
    else log.info(`shared state in Redis (${this.where})`);
    this.emit('up');
  }

  #lost(): void {
    if (this.#closed) return;
    if (!this.#up && this.#downSince !== undefined) return;
    const wasUp = this.#up;
    this.#up = false;
    this.#downSince = Date.now();
    if (wasUp) this.disconnects++;
    this.emit('down', this.#lastError);
  }

  #error(err: Error): void {
    this.#lastError = (err as NodeJS.ErrnoException).code ?? err.message;
    if (this.#closed) return;
    troubleLog.report('error', `redis:${this.#lastError}`, `cannot reach Redis (${this.where}): ${err.message}`);
  }
}

function describe(c: RedisConfig): string {
  if (c.url) {
    const u = new URL(c.url);
    u.username = '';
    u.password = '';
    return u.toString();
  }
  if (c.sentinels) return `Sentinel "${c.name}" via ${c.sentinels.map((s) => `${s.host}:${s.port}`).join(', ')}`;
  return `Cluster via ${c.nodes!.map((s) => `${s.host}:${s.port}`).join(', ')}`;
}

function connect(c: RedisConfig, subscriber: boolean): RedisClient {
  const tls = c.tls ? { ca: c.caFile ? readFileSync(c.caFile) : undefined } : undefined;
  const options: RedisOptions = {
    username: c.username,
    password: c.password?.reveal(),
    connectTimeout: c.connectTimeoutMs,
    // A subscribed connection waits for messages indefinitely: a command timeout would cut it.
    commandTimeout: subscriber ? undefined : c.commandTimeoutMs,
    // The subscriber's SUBSCRIBE may wait for the connection; commands may not (see above).
    enableOfflineQueue: subscriber,
    maxRetriesPerRequest: subscriber ? null : 0,
    retryStrategy: (attempt) => Math.min(100 * 2 ** attempt, MAX_RETRY_DELAY_MS),
    lazyConnect: true,
    tls,
    connectionName: subscriber ? 'tokengate-pubsub' : 'tokengate',
  };
  if (c.url) return new Redis(c.url, { ...options, tls: c.url.startsWith('rediss://') || tls ? (tls ?? {}) : undefined });
  if (c.sentinels) {
    return new Redis({ ...options, sentinels: c.sentinels, name: c.name, enableTLSForSentinelMode: c.tls, sentinelRetryStrategy: (attempt) => Math.min(100 * 2 ** attempt, MAX_RETRY_DELAY_MS) });
  }
  const cluster: ClusterOptions = {
    redisOptions: options,
    enableOfflineQueue: subscriber,
    lazyConnect: true,
    clusterRetryStrategy: (attempt) => Math.min(100 * 2 ** attempt, MAX_RETRY_DELAY_MS),
  };
  return new Cluster(c.nodes!, cluster);
}
