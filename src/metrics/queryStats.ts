/**
 * Query counts and durations of one (protocol, grant), in plain numbers.
 *
 * Counting a query is on the relay's hot path. prom-client's labelled observe() validates and
 * hashes the label values on every call (a child from labels() does the same), so each session
 * instead resolves its QueryStats once, when it is accepted, and the relay adds to plain fields
 * here when a statement completes; the metrics read these fields when scraped.
 */

/** Upper bounds of the query-duration buckets, in milliseconds (durations are measured in whole ms). */
export const QUERY_BUCKETS_MS: readonly number[] = Object.freeze([1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000]);

export class QueryStats {
  count = 0;
  /** Sum of the durations, in ms. */
  sumMs = 0;
  /** Non-cumulative: counts[i] holds durations in (bounds[i-1], bounds[i]]; the last slot is above every bound. */
  readonly counts: number[];

  constructor(readonly bounds: readonly number[] = QUERY_BUCKETS_MS) {
    this.counts = new Array<number>(bounds.length + 1).fill(0);
  }

  /** One completed statement that took `ms` milliseconds. */
  observe(ms: number): void {
    this.count++;
    this.sumMs += ms;
    const b = this.bounds;
    let i = 0;
    while (i < b.length && ms > b[i]) i++;
    this.counts[i]++;
  }
}
