import { readdirSync } from 'node:fs';
import { Counter, Gauge, type Registry } from 'prom-client';

/**
 * The process metrics dashboards expect (CPU, memory, file descriptors, heap, event-loop lag),
 * under prom-client's usual names, each read when scraped. prom-client's collectDefaultMetrics()
 * is not used: its GC observer and event-loop-delay histogram run all the time and cost about 7%
 * select-only throughput in `make bench` (docs/performance.md), where these cost nothing between
 * scrapes.
 */
export function registerProcessMetrics(registry: Registry): void {
  const registers = [registry];
  let lastCpu = { user: 0, system: 0 };
  const cpu = (which: 'user' | 'system') => new Counter({
    name: `process_cpu_${which}_seconds_total`, help: `${which === 'user' ? 'User' : 'System'} CPU time spent, in seconds.`, registers,
    collect() {
      const now = process.cpuUsage();
      this.inc((now[which] - lastCpu[which]) / 1e6);
      lastCpu = { ...lastCpu, [which]: now[which] };
    },
  });
  cpu('user');
  cpu('system');
  // Under a supervisor the workers' values are summed, except where a sum means nothing.
  const gauge = (name: string, help: string, read: () => number, aggregator: 'sum' | 'min' = 'sum') =>
    new Gauge({ name, help, registers, aggregator, collect() { this.set(read()); } });
  const startedAt = Date.now() / 1000 - process.uptime();
  gauge('process_start_time_seconds', 'Start time of the process since the Unix epoch, in seconds.', () => Math.round(startedAt), 'min');
  gauge('process_resident_memory_bytes', 'Resident memory size, in bytes.', () => process.memoryUsage.rss());
  gauge('process_open_fds', 'Open file descriptors.', () => {
    try {
      return readdirSync('/proc/self/fd').length;
    } catch {
      return 0; // not Linux
    }
  });
  gauge('nodejs_heap_size_total_bytes', 'V8 heap size, in bytes.', () => process.memoryUsage().heapTotal);
  gauge('nodejs_heap_size_used_bytes', 'V8 heap in use, in bytes.', () => process.memoryUsage().heapUsed);
  gauge('nodejs_external_memory_bytes', 'Memory of C++ objects bound to JavaScript (buffers), in bytes.', () => process.memoryUsage().external);
  new Gauge({
    name: 'nodejs_eventloop_lag_seconds', help: 'How long a callback queued at scrape time waited for the event loop, in seconds.', registers, aggregator: 'max',
    async collect() {
      const start = process.hrtime.bigint();
      await new Promise((resolve) => setImmediate(resolve));
      this.set(Number(process.hrtime.bigint() - start) / 1e9);
    },
  });
  new Gauge({ name: 'nodejs_version_info', help: 'Node.js version.', labelNames: ['version'], registers, aggregator: 'first' }).set({ version: process.version }, 1);
}
