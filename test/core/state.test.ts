import { InProcessCancelKeys } from '../../src/core/state/cancelKeys';
import { InProcessConnectionIds } from '../../src/core/state/connectionIds';
import { InProcessConnectionLeases } from '../../src/core/state/connectionLeases';
import { InProcessRevocations } from '../../src/core/state/revocations';

const T0 = Date.UTC(2026, 11, 3, 12, 0, 0);
const token = (o: { sub?: string; clientId?: string; jti?: string; iatMs?: number } = {}) =>
  ({ sub: o.sub ?? 'alice', clientId: o.clientId, jti: o.jti, issuedAt: o.iatMs === undefined ? undefined : o.iatMs / 1000 });

describe('revocations', () => {
  test('refuse tokens issued at or before the revocation, admit tokens issued after', () => {
    const r = new InProcessRevocations();
    r.add({ target: { sub: 'alice' }, reason: 'leaked' }, T0);
    expect(r.blocking(token({ iatMs: T0 - 60_000 }), T0 + 1000)?.reason).toBe('leaked');
    expect(r.blocking(token({ iatMs: T0 }), T0 + 1000)).toBeDefined();
    expect(r.blocking(token(), T0 + 1000)).toBeDefined(); // no iat: cannot prove it is newer
    expect(r.blocking(token({ iatMs: T0 + 1000 }), T0 + 2000)).toBeUndefined();
    expect(r.blocking(token({ sub: 'bob', iatMs: T0 - 1 }), T0 + 1)).toBeUndefined();
  });

  test('a lock refuses every matching token until `until`; then only older tokens, until it lapses', () => {
    const r = new InProcessRevocations();
    const lock = r.add({ target: { client: 'svc-a' }, until: T0 + 60_000 }, T0, 3_600_000);
    expect(lock.expiresAt).toBe(T0 + 3_600_000);
    const fresh = token({ sub: 'x', clientId: 'svc-a', iatMs: T0 + 30_000 });
    expect(r.blocking(fresh, T0 + 30_000)).toBeDefined();
    expect(r.blocking(fresh, T0 + 60_000)).toBeUndefined();
    expect(r.blocking(token({ sub: 'svc-a', iatMs: T0 - 1 }), T0 + 60_000)).toBeDefined(); // client = sub without cid
    expect(r.blocking(token({ sub: 'svc-a', iatMs: T0 - 1 }), T0 + 3_600_000)).toBeUndefined();
    expect(r.list(T0 + 3_600_000)).toEqual([]);
  });

  test('by jti, without a lifetime bound it lasts until removed; add and remove are announced', () => {
    const r = new InProcessRevocations();
    const seen: string[] = [];
    r.on('added', (x) => seen.push(`+${x.id}`));
    r.on('removed', (x) => seen.push(`-${x.id}`));
    const x = r.add({ target: { jti: 'j1' } }, T0);
    expect(x.expiresAt).toBeUndefined();
    expect(r.blocking(token({ jti: 'j1', iatMs: T0 - 1 }), T0 + 10 * 86_400_000)).toBeDefined();
    expect(r.blocking(token({ jti: 'j2', iatMs: T0 - 1 }), T0)).toBeUndefined();
    expect(r.remove(x.id)).toBe(x);
    expect(r.blocking(token({ jti: 'j1', iatMs: T0 - 1 }), T0)).toBeUndefined();
    expect(seen).toEqual([`+${x.id}`, `-${x.id}`]);
  });
});

test('cancel keys name a session id; a wrong secret or a released pid names nothing', () => {
  const keys = new InProcessCancelKeys();
  const k = keys.issue('pg-1');
  expect(k.processId).toBeGreaterThan(0);
  expect(k.processId).toBeLessThan(2 ** 31);
  expect(keys.lookup(k.processId, k.secretKey)).toBe('pg-1');
  expect(keys.lookup(k.processId, Buffer.from([0, 0, 0, 0]).fill(k.secretKey[0] ^ 1, 0, 1))).toBeUndefined();
  keys.release(k.processId);
  expect(keys.lookup(k.processId, k.secretKey)).toBeUndefined();
  expect(keys.size).toBe(0);
});

test('MySQL connection ids are in [2^30, 2^31) and name a session id', () => {
  const ids = new InProcessConnectionIds();
  const id = ids.issue('my-1');
  expect(id).toBeGreaterThanOrEqual(2 ** 30);
  expect(id).toBeLessThan(2 ** 31);
  expect(ids.lookup(id)).toBe('my-1');
  ids.release(id);
  expect(ids.lookup(id)).toBeUndefined();
});

test('leases: all or nothing, under their limits, released once', () => {
  const leases = new InProcessConnectionLeases();
  const a = leases.acquire([{ key: 'all', limit: 2 }, { key: 'identity:alice', limit: 1 }]);
  expect(a.ok).toBe(true);
  const b = leases.acquire([{ key: 'all', limit: 2 }, { key: 'identity:alice', limit: 1 }]);
  expect(b).toEqual({ ok: false, key: 'identity:alice', limit: 1, count: 1 });
  expect(leases.count('all')).toBe(1); // nothing taken by the refused request
  if (a.ok) {
    a.lease.release();
    a.lease.release();
  }
  expect(leases.count('all')).toBe(0);
  expect(leases.count('identity:alice')).toBe(0);
});
