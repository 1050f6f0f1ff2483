import type { Gauge } from 'prom-client';

type Labels = Record<string, string>;

/**
 * Counts by label set for a gauge computed when scraped. A label set seen at an earlier scrape
 * and absent now is reported as 0 rather than dropped, so `sessions_active == 0` stays
 * alertable; label values come from config names, so the sets stay few.
 */
export class GaugeTally<L extends string> {
  readonly #seen = new Map<string, Labels>();
  #now = new Map<string, { labels: Labels; value: number }>();

  constructor(private readonly labelNames: readonly L[]) {}

  add(labels: Record<L, string>, n = 1): void {
    const key = this.labelNames.map((l) => labels[l]).join('\u0000');
    const e = this.#now.get(key);
    if (e) e.value += n;
    else this.#now.set(key, { labels, value: n });
  }

  /** Sets the gauge to what was added since the last report, and 0 for the sets not seen this time. */
  report(gauge: Gauge<L>): void {
    for (const [key, labels] of this.#seen) if (!this.#now.has(key)) gauge.set(labels as Record<L, string>, 0);
    for (const [key, e] of this.#now) {
      this.#seen.set(key, e.labels);
      gauge.set(e.labels as Record<L, string>, e.value);
    }
    this.#now = new Map();
  }
}
