/** Output for people: aligned tables, short durations ("3m12s"), ages ("5m ago"), byte counts. */

const UNITS: Array<[string, number]> = [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1_000]];

/** The two largest units of a duration: 0s, 45s, 3m12s, 2h5m, 3d4h. */
export function humanDuration(ms: number): string {
  const total = Math.max(0, Math.floor(ms));
  for (let i = 0; i < UNITS.length; i++) {
    const [unit, size] = UNITS[i];
    if (total < size) continue;
    const major = `${Math.floor(total / size)}${unit}`;
    const next = UNITS[i + 1];
    const minor = next ? Math.floor((total % size) / next[1]) : 0;
    return minor > 0 ? `${major}${minor}${next[0]}` : major;
  }
  return '0s';
}

/** Milliseconds since the epoch of an ISO time, or undefined for null, absent or unparsable values. */
export function timeOf(iso: unknown): number | undefined {
  if (typeof iso !== 'string' || iso === '') return undefined;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? undefined : t;
}

/** "5m ago" / "in 2h" relative to now; "-" when there is no time. */
export function relative(iso: unknown, now: number): string {
  const t = timeOf(iso);
  if (t === undefined) return '-';
  return t <= now ? `${humanDuration(now - t)} ago` : `in ${humanDuration(t - now)}`;
}

/** 0, 512B, 1.5KiB, 12MiB. */
export function humanBytes(n: unknown): string {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '-';
  if (n < 1024) return `${n}B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = -1;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)}${units[i]}`;
}

/** Any value as one cell: null/undefined/'' -> "-", control characters removed so a value cannot break the table. */
export function cell(v: unknown): string {
  if (v === null || v === undefined || v === '') return '-';
  // eslint-disable-next-line no-control-regex
  return String(v).replace(/[\u0000-\u001f\u007f]/g, ' ');
}

/** Columns padded to their widest cell, two spaces apart; the last column is not padded. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd();
  return `${[line(headers), ...rows.map(line)].join('\n')}\n`;
}
