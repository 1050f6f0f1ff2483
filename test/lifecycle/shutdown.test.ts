import type { Connection } from 'mysql2/promise';
import { connectMysql2 } from '../integration/clients';
import { startGatewayHarness, type MysqlHarness } from '../integration/harness';

/**
 * gateway.shutdown() over MySQL: the listener closes, a transaction may finish, an idle session
 * ends at once with error 1053 (ER_SERVER_SHUTDOWN), and when the grace is over a session still
 * in its transaction is ended the same way.
 */

let h: MysqlHarness;
beforeAll(async () => {
  h = await startGatewayHarness({ protocol: 'mysql' });
});
afterAll(async () => {
  await h?.stop();
});

test('idle sessions end with 1053 at once, a session in a transaction when the grace is over; the listener refuses new connections', async () => {
  const idle = await connectMysql2(h, await h.token());
  const tx = await connectMysql2(h, await h.token());
  const idleGone = new Promise<{ code?: unknown; message: string }>((resolve) => (idle as Connection).once('error', resolve));
  const txGone = new Promise<{ code?: unknown; message: string }>((resolve) => (tx as Connection).once('error', resolve));
  await tx.query('START TRANSACTION');
  await tx.query('SELECT 1');
  const started = Date.now();
  const done = h.gateway.shutdown(1500);
  const idleErr = await idleGone;
  expect(idleErr.code).toBe(1053);
  expect(idleErr.message).toBe('tokengate is shutting down; reconnect in a moment');
  const refused = (await connectMysql2(h, await h.token()).catch((e: unknown) => e)) as { code?: string };
  expect(refused.code).toBe('ECONNREFUSED');
  const [rows] = await tx.query('SELECT 2 AS x'); // still inside the grace: the transaction goes on
  expect(rows).toEqual([{ x: 2 }]);
  expect((await txGone).code).toBe(1053);
  expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
  await done;
  const reasons = h.audit.ofEvent('session_end').map((r) => r.reason);
  expect(reasons).toEqual(['shutdown', 'shutdown']);
});
