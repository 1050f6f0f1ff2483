/** How a `make bench` target's figure is computed from the rounds. */
import { evaluateTarget, type RunSample, type Target, type ThroughputResult } from './report';

const sample = (round: number, tps: number): RunSample => ({ round, tps, transactions: tps * 10, errors: 0, load1: 1 });

const result: ThroughputResult = {
  id: '1', title: 'select-only', command: 'pgbench', notes: [],
  systems: [
    // The machine slows down over the run; each round's pair moves together.
    { id: 'plain', label: 'plain', samples: [sample(1, 100), sample(2, 80), sample(3, 60), sample(4, 40)] },
    { id: 'other', label: 'other', samples: [sample(1, 99), sample(2, 78), sample(3, 59), sample(4, 30)] },
  ],
};
const target = (paired: boolean): Target => ({ scenario: '1', description: 'other / plain', numerator: 'other', denominator: 'plain', minimum: 0.97, paired });

test('an unpaired target is the ratio of the medians', () => {
  const r = evaluateTarget(target(false), [result]);
  expect(r.measured).toBeCloseTo(68.5 / 70, 6);
  expect(r.perRound.map((x) => x.toFixed(3))).toEqual(['0.990', '0.975', '0.983', '0.750']);
});

test('a paired target is the median of the rounds\' ratios, so drift between rounds cancels', () => {
  const r = evaluateTarget(target(true), [result]);
  expect(r.measured).toBeCloseTo((0.975 + 59 / 60) / 2, 6);
  expect(r.status).toBe('**met**');
});

test('a paired target without its rows is not measured', () => {
  const r = evaluateTarget({ ...target(true), numerator: 'missing' }, [result]);
  expect(Number.isNaN(r.measured)).toBe(true);
  expect(r.status).toMatch(/not measured/);
});
