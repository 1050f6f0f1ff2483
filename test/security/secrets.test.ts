/** The leak check itself: it must find a secret wherever the gateway could print it. */
import { log } from '../../src/log';
import { MemoryTransport } from '../helpers/memoryTransport';
import { capturePrinted, expectNothingLeaked } from './secrets';

const TOKEN = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg';
const SIGNATURE = TOKEN.split('.')[2];

test.each([
  ['the operational log at debug level', () => log.debug(`verifying ${TOKEN}`)],
  ['stdout', () => process.stdout.write(`token=${TOKEN}\n`)],
  ['stderr, the signature only', () => process.stderr.write(`sig ${SIGNATURE}\n`)],
  ['console.error', () => console.error('password', 'pw-0123456789')],
  ['an audit line', (audit: MemoryTransport) => audit.write(JSON.stringify({ event: 'x', message: `bad ${SIGNATURE}` }))],
  ['a client error', (_a: MemoryTransport, clientErrors: string[]) => clientErrors.push(`refused: ${TOKEN}`)],
] as const)('a secret in %s is found', (_where, leak) => {
  const printed = capturePrinted();
  const audit = new MemoryTransport();
  audit.write(JSON.stringify({ event: 'connection_rejected', reason: 'expired' }));
  printed.watch(audit);
  (leak as (a: MemoryTransport, e: string[]) => void)(audit, printed.clientErrors);
  expect(() => expectNothingLeaked(printed, [TOKEN, 'pw-0123456789'])).toThrow(/appears in the/);
});

test('clean output passes', () => {
  const printed = capturePrinted();
  const audit = new MemoryTransport();
  audit.write(JSON.stringify({ event: 'connection_rejected', reason: 'expired' }));
  printed.watch(audit);
  log.info('nothing secret here');
  expectNothingLeaked(printed, [TOKEN, 'pw-0123456789']);
});
