import { Registry, type Metric } from 'prom-client';
import { AccumulatedHistogram } from '../../src/metrics/accumulatedHistogram';
import { QueryStats } from '../../src/metrics/queryStats';
import { parsePromText } from './promText';

test('a duration lands in the first bucket whose bound is not below it; past every bound, only +Inf counts it', () => {
  const q = new QueryStats([1, 10, 100]);
  for (const ms of [0, 1, 2, 10, 11, 100, 101, 5000]) q.observe(ms);
  expect(q.counts).toEqual([2, 2, 2, 2]);
  expect(q.count).toBe(8);
  expect(q.sumMs).toBe(5225);
});

test('the histogram renders cumulative buckets in seconds, +Inf, _sum and _count, per label set', async () => {
  const a = new QueryStats([1, 10, 100]);
  const b = new QueryStats([1, 10, 100]);
  [0, 5, 50, 500].forEach((ms) => a.observe(ms));
  b.observe(3);
  const registry = new Registry();
  registry.registerMetric(new AccumulatedHistogram({
    name: 'x_duration_seconds', help: 'test', labelNames: ['grant'],
    series: () => [{ labels: { grant: 'a' }, stats: a }, { labels: { grant: 'b' }, stats: b }],
  }) as unknown as Metric);
  const m = parsePromText(await registry.metrics());
  expect(m.types.get('x_duration_seconds')).toBe('histogram');
  expect(m.find('x_duration_seconds_bucket', { grant: 'a' }).map((s) => [s.labels.le, s.value])).toEqual([['0.001', 1], ['0.01', 2], ['0.1', 3], ['+Inf', 4]]);
  expect(m.value('x_duration_seconds_sum', { grant: 'a' })).toBeCloseTo(0.555);
  expect(m.value('x_duration_seconds_count', { grant: 'a' })).toBe(4);
  expect(m.value('x_duration_seconds_bucket', { grant: 'b', le: '0.001' })).toBe(0);
  expect(m.value('x_duration_seconds_bucket', { grant: 'b', le: '0.01' })).toBe(1);
  a.observe(2); // read when scraped, not copied
  expect(parsePromText(await registry.metrics()).value('x_duration_seconds_count', { grant: 'a' })).toBe(5);
});
