import type { QueryStats } from './queryStats';

type Labels = Record<string, string>;

export interface AccumulatedHistogramOptions {
  name: string;
  help: string;
  labelNames: string[];
  /** The series now: their labels and the plain counts they were observed into. */
  series: () => { labels: Labels; stats: QueryStats }[];
}

interface Value {
  value: number;
  labels: Labels;
  metricName: string;
}

/**
 * A Prometheus histogram whose buckets are kept outside prom-client, in QueryStats (in ms), and
 * read when scraped. prom-client's Histogram cannot take counts in bulk, so this is a metric of
 * the shape its Registry reads (name, help, type, aggregator and get()).
 */
export class AccumulatedHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly name: string;
  readonly help: string;
  readonly labelNames: string[];
  readonly #series: AccumulatedHistogramOptions['series'];

  constructor(o: AccumulatedHistogramOptions) {
    this.name = o.name;
    this.help = o.help;
    this.labelNames = o.labelNames;
    this.#series = o.series;
  }

  async get(): Promise<{ name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: Value[] }> {
    const values: Value[] = [];
    for (const { labels, stats } of this.#series()) {
      let cumulative = 0;
      stats.bounds.forEach((ms, i) => {
        cumulative += stats.counts[i];
        values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: String(ms / 1000) }, value: cumulative });
      });
      values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: '+Inf' }, value: stats.count });
      values.push({ metricName: `${this.name}_sum`, labels, value: stats.sumMs / 1000 });
      values.push({ metricName: `${this.name}_count`, labels, value: stats.count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}
