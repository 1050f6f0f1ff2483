import { ConfigStore } from '../../src/core/configStore';
import { PoolRegistry } from '../../src/core/poolRegistry';
import { Pool, type UpstreamConnection } from '../../src/core/pool';
import type { Config } from '../../src/config/schema';
import { ENV, RO_PASSWORD, parseDoc, withDoc } from '../config/helpers';

const fake = (): UpstreamConnection => ({ broken: false, attached: true, close: () => undefined });

function poolFor(registry: PoolRegistry, config: Config, role = 'reader'): Pool<UpstreamConnection> {
  const upstream = config.upstreams['app-pg'];
  return registry.get({ protocol: 'postgres', upstream, role: upstream.roles[role], parts: ['app_production'], name: () => `app-pg/${role}/app` },
    (clock) => new Pool('app-pg/reader/app', { ...upstream.pool }, { create: async () => fake(), reset: async () => true }, clock));
}

describe('ConfigStore', () => {
  test('swap replaces the config and reports what changed, with secrets compared by value', () => {
    const a = parseDoc(withDoc(() => undefined));
    const store = new ConfigStore(a);
    const seen: Config[] = [];
    store.on('swap', (next) => seen.push(next));

    expect(store.swap(parseDoc(withDoc(() => undefined))).any).toBe(false);

    const rotated = parseDoc(withDoc(() => undefined), { ...ENV, APP_RO_PASSWORD: `${RO_PASSWORD}-rotated` });
    const change = store.swap(rotated);
    expect(change.upstreams).toEqual({ added: [], removed: [], changed: ['app-pg'] });
    expect(change.grants).toBe(false);
    expect(store.current()).toBe(rotated);
    expect(JSON.stringify(change)).not.toContain(RO_PASSWORD);

    const regranted = store.swap(parseDoc(withDoc((d) => {
      d.grants[0].roles = ['reader', 'writer'];
      d.session = { authTimeout: '3s' };
    }), { ...ENV, APP_RO_PASSWORD: `${RO_PASSWORD}-rotated` }));
    expect(regranted).toMatchObject({ grants: true, session: true, oidc: false, upstreams: { changed: [] }, any: true });
    expect(seen).toHaveLength(3);
  });
});

describe('PoolRegistry', () => {
  test('the same effective settings share a pool; a rotated password or a moved host gets a new one, and the old one is retired', async () => {
    const registry = new PoolRegistry();
    const a = parseDoc(withDoc(() => undefined));
    const p1 = poolFor(registry, a);
    expect(poolFor(registry, parseDoc(withDoc(() => undefined)))).toBe(p1);
    expect(poolFor(registry, a, 'writer')).not.toBe(p1);

    const rotated = parseDoc(withDoc(() => undefined), { ...ENV, APP_RO_PASSWORD: 'another' });
    const p2 = poolFor(registry, rotated);
    expect(p2).not.toBe(p1);
    const moved = parseDoc(withDoc((d) => (d.upstreams['app-pg'].host = '127.0.0.2')), { ...ENV, APP_RO_PASSWORD: 'another' });
    expect(poolFor(registry, moved)).not.toBe(p2);

    expect(registry.retireStale(moved).sort()).toEqual(['app-pg/reader/app', 'app-pg/reader/app', 'app-pg/writer/app']);
    expect(p1.closed).toBe(true);
    expect(p2.closed).toBe(true);
    await expect(p1.acquire()).rejects.toThrow(/shutting down/);
    expect(Object.keys(registry.stats())).toEqual(['app-pg/reader/app']);
    await registry.closeAll();
  });
});
