import { configureLog, log } from '../../src/log';

/** log.level and log.format from the config, TOKENGATE_LOG_LEVEL over log.level. */

const saved = process.env.TOKENGATE_LOG_LEVEL;
afterEach(() => {
  if (saved === undefined) delete process.env.TOKENGATE_LOG_LEVEL;
  else process.env.TOKENGATE_LOG_LEVEL = saved;
  configureLog({ level: 'info', format: 'auto' });
});

function render(): string {
  const info = log.format.transform({ level: 'info', message: 'hello', [Symbol.for('level')]: 'info' } as never) as Record<string | symbol, unknown>;
  return String(info[Symbol.for('message')]);
}

test('log.level sets the level; TOKENGATE_LOG_LEVEL overrides it', () => {
  delete process.env.TOKENGATE_LOG_LEVEL;
  configureLog({ level: 'warn', format: 'auto' });
  expect(log.level).toBe('warn');
  process.env.TOKENGATE_LOG_LEVEL = 'debug';
  configureLog({ level: 'warn', format: 'auto' });
  expect(log.level).toBe('debug');
});

test('json gives JSON lines, text a readable line; auto picks JSON when stderr is not a terminal', () => {
  configureLog({ level: 'info', format: 'json' });
  expect(JSON.parse(render())).toMatchObject({ level: 'info', message: 'hello' });
  configureLog({ level: 'info', format: 'text' });
  expect(render()).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z info hello$/);
  configureLog({ level: 'info', format: 'auto' });
  if (!process.stderr.isTTY) expect(JSON.parse(render())).toMatchObject({ message: 'hello' });
});
