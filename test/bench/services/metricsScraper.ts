import http from 'node:http';

/** How often the benchmark scrapes /metrics (Prometheus scrapes every 15 s by default: this is harsher). */
export const SCRAPE_INTERVAL_MS = 1000;

/**
 * Runs `work` while GET http://127.0.0.1:<port>/metrics is fetched every SCRAPE_INTERVAL_MS, as a
 * Prometheus server would; the result's note says how many scrapes answered 200. An admin
 * endpoint that does not serve /metrics (yet) leaves the metrics collected but not scraped.
 */
export async function whileScraping<T extends { note?: string }>(port: number, work: () => Promise<T>): Promise<T> {
  let ok = 0;
  let failed = 0;
  let lastError = '';
  const scrape = (): void => {
    const req = http.get({ host: '127.0.0.1', port, path: '/metrics', timeout: SCRAPE_INTERVAL_MS }, (res) => {
      res.resume();
      res.on('end', () => {
        if (res.statusCode === 200) ok++;
        else {
          failed++;
          lastError = `HTTP ${res.statusCode}`;
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => {
      failed++;
      lastError = err.message;
    });
  };
  const timer = setInterval(scrape, SCRAPE_INTERVAL_MS);
  try {
    const result = await work();
    const scraped = ok > 0 ? `/metrics scraped ${ok} times` : `metrics collected, not scraped (/metrics: ${lastError || 'no answer'})`;
    const extra = failed > 0 && ok > 0 ? `, ${failed} scrapes failed (${lastError})` : '';
    return { ...result, note: [result.note, `${scraped}${extra}`].filter(Boolean).join('; ') };
  } finally {
    clearInterval(timer);
  }
}
