import { randomId } from '../../random';
import type { InstanceIdentity } from '../../instance';
import type { RedisKeys } from './keys';
import type { RedisLink } from './link';

/**
 * Messages between instances over Redis pub/sub: one-way messages (a forwarded CancelRequest),
 * and requests whose answers come back on the asker's reply channel (session lists, a kill).
 * Nothing here is on the query path: only operator requests and cancels use it.
 */

export interface BusMessage {
  type: string;
  /** The sending instance's key (InstanceIdentity.key). */
  from: string;
  /** Set on requests: the reply carries it back. */
  requestId?: string;
  body: unknown;
}

export interface BusReply {
  requestId: string;
  from: string;
  body: unknown;
}

/** Answers a request (or handles a one-way message, returning undefined). */
export type BusHandler = (body: unknown, from: string) => unknown | Promise<unknown>;

interface Pending {
  replies: BusReply[];
  expect: number;
  done?: (replies: BusReply[]) => boolean;
  finish: () => void;
}

export class PeerBus {
  readonly #handlers = new Map<string, BusHandler>();
  readonly #pending = new Map<string, Pending>();

  constructor(private readonly link: RedisLink, private readonly keys: RedisKeys, private readonly self: InstanceIdentity, private readonly timeoutMs: number) {}

  /** The channels this instance listens on. */
  get channels(): string[] {
    return [this.keys.broadcastChannel, this.keys.instanceChannel(this.self.number), this.keys.replyChannel(this.self.key)];
  }

  handle(type: string, handler: BusHandler): void {
    this.#handlers.set(type, handler);
  }

  /** A one-way message to the instance(s) with number `n`; false when Redis cannot be reached. */
  async send(n: number, type: string, body: unknown): Promise<boolean> {
    return this.#publish(this.keys.instanceChannel(n), { type, from: this.self.key, body });
  }

  /**
   * Asks the instance(s) numbered `n`, or every other instance (`n` undefined), and collects the
   * replies until `expect` arrived, `done` says enough, or commandTimeout passed.
   */
  async ask(n: number | undefined, type: string, body: unknown, expect: number, done?: (replies: BusReply[]) => boolean): Promise<BusReply[]> {
    if (expect <= 0) return [];
    const requestId = randomId('', 8);
    const replies: BusReply[] = [];
    const result = new Promise<BusReply[]>((resolve) => {
      const timer = setTimeout(() => finish(), this.timeoutMs);
      const finish = (): void => {
        clearTimeout(timer);
        this.#pending.delete(requestId);
        resolve(replies);
      };
      this.#pending.set(requestId, { replies, expect, done, finish });
    });
    const channel = n === undefined ? this.keys.broadcastChannel : this.keys.instanceChannel(n);
    if (!(await this.#publish(channel, { type, from: this.self.key, requestId, body }))) this.#pending.get(requestId)?.finish();
    return result;
  }

  /** A message arrived on one of this instance's channels. */
  async receive(channel: string, text: string): Promise<void> {
    let msg: BusMessage | BusReply;
    try {
      msg = JSON.parse(text) as BusMessage | BusReply;
    } catch {
      return;
    }
    if (channel === this.keys.replyChannel(this.self.key)) {
      const reply = msg as BusReply;
      const p = this.#pending.get(reply.requestId);
      if (!p) return;
      p.replies.push(reply);
      if (p.replies.length >= p.expect || p.done?.(p.replies)) p.finish();
      return;
    }
    const m = msg as BusMessage;
    if (m.from === this.self.key) return;
    const handler = this.#handlers.get(m.type);
    if (!handler) return;
    const answer = await Promise.resolve().then(() => handler(m.body, m.from)).catch(() => undefined);
    if (m.requestId === undefined) return;
    await this.#publish(this.keys.replyChannel(m.from), { requestId: m.requestId, from: this.self.key, body: answer ?? null });
  }

  async #publish(channel: string, msg: BusMessage | BusReply): Promise<boolean> {
    if (!this.link.available) return false;
    try {
      await this.link.client.publish(channel, JSON.stringify(msg));
      return true;
    } catch {
      return false;
    }
  }
}
