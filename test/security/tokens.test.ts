/**
 * Hostile tokens against both listeners (issue 15, section 1). Every case is sent by a real
 * driver (node-postgres; mysql2 with mysql_clear_password) and must end in the protocol's own
 * refusal (PostgreSQL 28P01, MySQL 1045/28000), a connection_rejected audit record with the
 * case's reason, and no upstream connection (the pools and the server's own session list are
 * unchanged). Then: a flood of unknown kids, key rotation and an IdP outage. Everything the
 * gateways printed during the file is kept for test/security/secrets.ts, which greps it for
 * every token and password used (issue 15, section 5).
 */
import { randomBytes } from 'node:crypto';
import { startDevIssuer, type DevIssuer } from '../../src/dev/devIssuer';
import { MAX_ACCESS_TOKEN_BYTES } from '../../src/identity/tokenSize';
import { AUDIENCE, CLIENTS, startGatewayHarness, type Harness, type RunningGateway } from '../integration/harness';
import { waitFor } from '../helpers/waitFor';
import { run } from '../integration/clients';
import { CASES, REFUSED, connect, makeCtx, type Ctx, type Outcome } from './cases';
import { b64url, claimsOf, signWith } from './forge';
import { capturePrinted, expectNothingLeaked, type Printed } from './secrets';

/** Sessions the upstream server has for the gateway's upstream users (its own view, not the gateway's). */
async function upstreamSessions(h: Harness): Promise<number> {
  if (h.protocol === 'postgres') {
    return Number(await h.cluster.psql(`select count(*) from pg_stat_activity where usename in ('${h.names.ro}', '${h.names.rw}')`));
  }
  const rows = (await h.admin('SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER IN (?, ?)', [h.names.ro, h.names.rw])) as { n: number }[];
  return Number(rows[0].n);
}

function poolConnections(g: RunningGateway): number {
  return Object.values(g.gateway.pools.stats()).reduce((n, s) => n + s.total + s.waiting, 0);
}

/** Everything the gateways printed in this file: the secrets check reads it at the end. */
const printed: Printed = capturePrinted();
/** Every token and password sent in this file, good or forged. */
const sent: string[] = [];
// Ends the capture even when the final check is filtered out (the worker runs other files next).
afterAll(() => void printed.collect());

describe.each(['postgres', 'mysql'] as const)('%s', (protocol) => {
  let h: Harness;
  let ctx: Ctx & { stop(): Promise<void> };
  let other: DevIssuer;
  /** A second gateway on the same issuer with short key timers, for rotation and the outage. */
  let quick: RunningGateway;

  beforeAll(async () => {
    h = protocol === 'postgres' ? await startGatewayHarness({ protocol: 'postgres' }) : await startGatewayHarness({ protocol: 'mysql' });
    quick = await h.startGateway({ oidc: { jwksCooldown: '1s', fetchTimeout: '1s' } });
    other = await startDevIssuer({ audience: AUDIENCE, clients: CLIENTS });
    ctx = await makeCtx(h.issuer, (clientId, o) => h.token(clientId, o), other);
    printed.watch(h.audit, quick.audit);
  }, 120_000);

  afterAll(async () => {
    printed.metrics.push(...(await Promise.all([h.gateway, quick.gateway].map((g) => g.metrics?.render() ?? Promise.resolve('')))));
    sent.push(...h.secrets);
    await ctx?.stop();
    await other?.stop();
    await h?.stop();
  });

  const attempt = async (port: number, password: string): Promise<Outcome> => {
    sent.push(password);
    const outcome = await connect(protocol, port, password);
    if (!outcome.ok) printed.clientErrors.push(outcome.message);
    return outcome;
  };

  test('a normal session is admitted', async () => {
    expect(await attempt(h.port, await h.token())).toEqual({ ok: true });
  });

  test.each(CASES.map((c) => [c.name, c] as const))('%s: refused, audited, no upstream connection', async (_name, tc) => {
    const token = await tc.make(ctx);
    const before = { upstream: await upstreamSessions(h), pools: poolConnections(h), audit: h.audit.records.length };
    const outcome = await attempt(h.port, token);
    expect(outcome).toMatchObject({ ok: false, code: REFUSED[protocol], message: expect.stringMatching(tc.text) });
    const record = await waitFor(() => h.audit.records.slice(before.audit).find((r) => r.event === 'connection_rejected'), { what: 'the connection_rejected record' });
    expect(record).toMatchObject({ protocol, reason: tc.reason, message: expect.stringContaining((outcome as { message: string }).message) });
    expect(poolConnections(h)).toBe(before.pools);
    expect(await upstreamSessions(h)).toBe(before.upstream);
    expect(ctx.recorder.requests).toEqual([]);
  });

  test(`a 100 KB token is refused at once: no parsing, no key fetch, no signature check`, async () => {
    const real = await h.token();
    const [head, , sig] = real.split('.');
    const huge = `${head}.${b64url({ ...claimsOf(real), pad: 'A'.repeat(100 * 1024) })}.${sig}`;
    const verifier = h.gateway.verifier();
    const before = { checks: verifier.stats.signatureChecks, jwks: h.issuer.requestCount('v1/keys'), audit: h.audit.records.length, upstream: await upstreamSessions(h) };
    const outcome = await attempt(h.port, huge);
    expect(outcome).toMatchObject({ ok: false, code: REFUSED[protocol], message: expect.stringMatching(new RegExp(`too large for an access token \\(at most ${MAX_ACCESS_TOKEN_BYTES} bytes`)) });
    const record = await waitFor(() => h.audit.records.slice(before.audit).find((r) => r.event === 'connection_rejected'), { what: 'the connection_rejected record' });
    expect(record.reason).toBe('token_too_large');
    expect(verifier.stats.signatureChecks).toBe(before.checks);
    expect(h.issuer.requestCount('v1/keys')).toBe(before.jwks);
    expect(await upstreamSessions(h)).toBe(before.upstream);
  });

  if (protocol === 'mysql') {
    test('a 100 KB token inside the login packet (libmariadb sends it there) is refused the same way', async () => {
      const real = await h.token();
      const [head, , sig] = real.split('.');
      // ~100 KB once encoded (an environment string holds at most 128 KiB).
      const huge = `${head}.${b64url({ ...claimsOf(real), pad: 'B'.repeat(75 * 1024) })}.${sig}`;
      sent.push(huge);
      const checks = h.gateway.verifier().stats.signatureChecks;
      const audit = h.audit.records.length;
      const r = await run('mariadb', ['--no-defaults', '-h127.0.0.1', `-P${h.port}`, '-ureader', '-Dapp', '--skip-ssl', '-e', 'SELECT 1'], { MYSQL_PWD: huge });
      printed.clientErrors.push(r.stderr);
      expect(r.stderr).toMatch(/ERROR 1045 \(28000\).*too large for an access token/);
      const record = await waitFor(() => h.audit.records.slice(audit).find((e) => e.event === 'connection_rejected'), { what: 'the connection_rejected record' });
      expect(record.reason).toBe('token_too_large');
      expect(h.gateway.verifier().stats.signatureChecks).toBe(checks);
    });
  }

  test('a flood of tokens with random kids: all refused, at most one JWKS fetch per jwksCooldown', async () => {
    const claims = await ctx.good();
    const tokens = await Promise.all(Array.from({ length: 40 }, () => signWith(ctx.attacker, claims, { kid: randomBytes(8).toString('hex') })));
    const before = { jwks: h.issuer.requestCount('v1/keys'), upstream: await upstreamSessions(h) };
    const started = Date.now();
    const outcomes: Outcome[] = [];
    for (let i = 0; i < tokens.length; i += 10) outcomes.push(...(await Promise.all(tokens.slice(i, i + 10).map((t) => attempt(h.port, t)))));
    const elapsed = Date.now() - started;
    for (const o of outcomes) expect(o).toMatchObject({ ok: false, code: REFUSED[protocol], message: expect.stringMatching(/does not publish/) });
    // The harness gateway keeps the default 30s cooldown and the flood takes far less.
    expect(elapsed).toBeLessThan(30_000);
    expect(h.issuer.requestCount('v1/keys') - before.jwks).toBeLessThanOrEqual(1);
    expect(await upstreamSessions(h)).toBe(before.upstream);

    // With a 1s cooldown the same flood may cost one fetch per second it lasts, and no more.
    const quickBefore = h.issuer.requestCount('v1/keys');
    const quickStarted = Date.now();
    for (let i = 0; i < tokens.length; i += 10) {
      for (const o of await Promise.all(tokens.slice(i, i + 10).map((t) => attempt(quick.port, t)))) expect(o).toMatchObject({ ok: false, code: REFUSED[protocol] });
    }
    expect(h.issuer.requestCount('v1/keys') - quickBefore).toBeLessThanOrEqual(1 + Math.floor((Date.now() - quickStarted) / 1000));
  });

  test('the IdP rotates its keys: tokens signed with the new key verify without a restart', async () => {
    expect(await attempt(quick.port, await h.token())).toEqual({ ok: true });
    await h.issuer.rotateKeys();
    const fresh = await h.token();
    // Refused as an unknown key at most until the cooldown (1s) allows a refetch, then admitted.
    await waitFor(async () => (await attempt(quick.port, fresh)).ok, { what: 'a token signed with the rotated key to be admitted', timeoutMs: 10_000, intervalMs: 250 });
    expect(await attempt(quick.port, await h.token())).toEqual({ ok: true });
  });

  test('the IdP hangs, then is gone: cached keys still verify, unknown kids are refused promptly, nothing hangs', async () => {
    const claims = await ctx.good();
    for (const outage of ['hang', 'stopped'] as const) {
      if (outage === 'hang') h.issuer.setAvailable(false, 'hang');
      else await h.issuer.stop();
      // A token the gateway has not seen, signed with the key it has cached.
      expect(await attempt(quick.port, await h.token())).toEqual({ ok: true });
      const started = Date.now();
      const unknown = await attempt(quick.port, await signWith(ctx.attacker, claims, { kid: `gone-${outage}` }));
      // At most one key fetch bounded by fetchTimeout (1s) stands between the client and its answer.
      expect(Date.now() - started).toBeLessThan(3_000);
      expect(unknown).toMatchObject({ ok: false, code: REFUSED[protocol], message: expect.stringMatching(/does not publish|cannot obtain the signing keys/) });
    }
    // A gateway that starts while the IdP is gone has no keys: it refuses, promptly, and says it is not the token's fault.
    const cold = await h.startGateway({ oidc: { fetchTimeout: '1s' } });
    printed.watch(cold.audit);
    const started = Date.now();
    expect(await attempt(cold.port, await h.token())).toMatchObject({ ok: false, code: REFUSED[protocol], message: expect.stringMatching(/cannot obtain the signing keys .*This is not a problem with your token/) });
    expect(Date.now() - started).toBeLessThan(3_000);
    await cold.audit.waitFor((e) => e.event === 'connection_rejected' && e.reason === 'idp_unavailable');
  });
});

test('nothing any gateway printed in this file contains a token, a password or a secret', () => {
  expectNothingLeaked(printed, sent);
});
