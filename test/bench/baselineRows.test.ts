/** The pure parts of `make bench BASELINE=<ref>`: option parsing, round order, the ratio table. */
import { parseOptions } from './options';
import { baselineTable, type RunSample, type ThroughputResult } from './report';
import { roundOrder } from './runner';

const sample = (round: number, tps: number, cpuUsPerTx: number): RunSample => ({ round, tps, transactions: tps * 10, errors: 0, cpuUsPerTx, load1: 1 });

test('BASELINE takes a git ref and refuses option-like or spaced values', () => {
  expect(parseOptions({}).baseline).toBeUndefined();
  expect(parseOptions({ BASELINE: ' main ' }).baseline).toBe('main');
  expect(parseOptions({ BASELINE: 'HEAD~3' }).baseline).toBe('HEAD~3');
  expect(() => parseOptions({ BASELINE: '--output=x' })).toThrow(/git ref/);
  expect(() => parseOptions({ BASELINE: 'a b' })).toThrow(/git ref/);
});

test('tokengate and its baseline swap places every other round; the other systems keep theirs', () => {
  const spec = { systems: ['direct', 'pgbouncer', 'tokengate', 'tokengate-baseline', 'node-pipe'].map((id) => ({ id })), alternate: ['tokengate', 'tokengate-baseline'] as [string, string] };
  expect(roundOrder(spec, 1)).toEqual([0, 1, 2, 3, 4]);
  expect(roundOrder(spec, 2)).toEqual([0, 1, 3, 2, 4]);
  expect(roundOrder(spec, 3)).toEqual([0, 1, 2, 3, 4]);
  expect(roundOrder({ systems: spec.systems }, 2)).toEqual([0, 1, 2, 3, 4]);
});

test('the baseline table pairs each round and reports the median of the rounds\' ratios', () => {
  const result: ThroughputResult = {
    id: '1', title: 'select-only', command: 'pgbench', notes: [],
    systems: [
      { id: 'tokengate', label: 'tokengate', samples: [sample(1, 100, 20), sample(2, 90, 22), sample(3, 120, 18)] },
      { id: 'tokengate-baseline', label: 'tokengate-baseline', samples: [sample(1, 100, 20), sample(2, 100, 20), sample(3, 100, 20)] },
    ],
  };
  const row = baselineTable([result], 'tokengate-baseline').split('\n')[2];
  expect(row).toContain('| 1.000 | 1.000 / 0.900 / 1.200 |');
  expect(row).toContain('| 1.000 | 1.000 / 1.100 / 0.900 |');
});
