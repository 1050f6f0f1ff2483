import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Config } from '../config/schema';
import { Secret } from '../config/secret';

/** What a swap changed, section by section, and for upstreams by name. */
export interface ConfigChange {
  listen: boolean;
  tls: boolean;
  oidc: boolean;
  audit: boolean;
  session: boolean;
  grants: boolean;
  limits: boolean;
  admin: boolean;
  state: boolean;
  redis: boolean;
  log: boolean;
  workers: boolean;
  upstreams: { added: string[]; removed: string[]; changed: string[] };
  /** True when anything at all differs. */
  any: boolean;
}

interface ConfigStoreEvents {
  swap: [next: Config, previous: Config, change: ConfigChange];
}

/**
 * The gateway's current configuration. Code reads `current()` where it uses a value, so a swap
 * reaches every new session at once; nothing keeps a copy of a value that a reload may change.
 * `swap` listeners (pools, the verifier, the audit sink) rebuild what depends on a changed section.
 */
export class ConfigStore extends EventEmitter<ConfigStoreEvents> {
  #current: Config;

  constructor(initial: Config) {
    super();
    this.#current = initial;
  }

  current(): Config {
    return this.#current;
  }

  /** Replaces the config whole and says what changed; listeners run before it returns. */
  swap(next: Config): ConfigChange {
    const previous = this.#current;
    const change = diffConfigs(previous, next);
    this.#current = next;
    this.emit('swap', next, previous, change);
    return change;
  }
}

/** Compares two configs by content (secrets by digest: their values never leave the process). */
export function diffConfigs(a: Config, b: Config): ConfigChange {
  const same = (x: unknown, y: unknown): boolean => canonical(x) === canonical(y);
  const names = (c: Config): string[] => Object.keys(c.upstreams);
  const added = names(b).filter((n) => !(n in a.upstreams));
  const removed = names(a).filter((n) => !(n in b.upstreams));
  const changed = names(b).filter((n) => n in a.upstreams && !same(a.upstreams[n], b.upstreams[n]));
  const change: ConfigChange = {
    listen: !same(a.listen, b.listen),
    tls: !same(a.tls, b.tls),
    oidc: !same(a.oidc, b.oidc),
    audit: !same(a.audit, b.audit),
    session: !same(a.session, b.session),
    grants: !same(a.grants, b.grants),
    limits: !same(a.limits, b.limits),
    admin: !same(a.admin, b.admin),
    state: !same(a.state, b.state),
    redis: !same(a.redis, b.redis),
    log: !same(a.log, b.log),
    workers: a.workers !== b.workers,
    upstreams: { added, removed, changed },
    any: false,
  };
  change.any = change.listen || change.tls || change.oidc || change.audit || change.session || change.grants ||
    change.limits || change.admin || change.state || change.redis || change.log || change.workers || added.length > 0 || removed.length > 0 || changed.length > 0;
  return change;
}

/** JSON with sorted keys and each Secret replaced by a digest of its value. */
function canonical(value: unknown): string {
  // A replacer sees a value after its toJSON(), so the Secret itself is read from the holder.
  return JSON.stringify(value, function (this: Record<string, unknown>, key: string, v: unknown) {
    const raw = this[key];
    if (raw instanceof Secret) return `secret:${createHash('sha256').update(raw.reveal()).digest('base64url')}`;
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)));
    }
    return v;
  });
}
