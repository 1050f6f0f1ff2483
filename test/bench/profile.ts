/**
 * Reads a V8 .cpuprofile (node --cpu-prof) and says where the time went: by area (tokengate
 * modules, node internals, npm packages, GC), the hottest functions by self time, and
 * tokengate's own functions by inclusive time.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  idleMs: number;
  areas: { area: string; ms: number }[];
  selfTop: { fn: string; where: string; ms: number }[];
  gatewayInclusive: { fn: string; where: string; ms: number }[];
}

function shortUrl(url: string): string {
  const dist = /\/dist\/(.*)$/.exec(url);
  if (dist) return dist[1].replace(/\.js$/, '.ts');
  const mod = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(.*)$/.exec(url);
  if (mod) return `${mod[1]}/${mod[2]}`;
  return url.replace(/^file:\/\//, '');
}

function areaOf(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (!url) {
    if (functionName.startsWith('(')) return functionName; // (garbage collector), (program), (idle), (root)
    return 'native (C++ bindings, builtins)';
  }
  if (/\/dist\/(src|protocols)\//.test(url)) return `tokengate ${shortUrl(url)}`;
  const mod = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (mod) return `npm ${mod[1]}`;
  if (url.startsWith('node:')) {
    const m = /^node:(?:internal\/)?(.*)$/.exec(url)!;
    const name = m[1];
    if (/^(net|stream|streams\/|stream_base_commons|tls|_tls|child_process)/.test(name)) return 'node net/stream/tls';
    if (/^(timers|process\/task_queues|async_hooks|process\/)/.test(name)) return 'node timers/microtasks';
    if (/^(crypto|webcrypto)/.test(name)) return 'node crypto';
    if (/^(buffer|util|errors|validators)/.test(name)) return 'node buffer/util';
    if (/^(events|event_target)/.test(name)) return 'node events';
    return `node ${name.split('/')[0]}`;
  }
  return shortUrl(url);
}

const label = (f: CallFrame): string => f.functionName || '(anonymous)';
const where = (f: CallFrame): string => (f.url ? `${shortUrl(f.url)}:${f.lineNumber + 1}` : '');

export function summarizeProfile(file: string, top = 20): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const self = new Map<number, number>();
  const inclusive = new Map<string, { fn: string; where: string; ms: number }>();
  let totalMs = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const ms = (p.timeDeltas[i] ?? 0) / 1000;
    if (ms <= 0) continue;
    const id = p.samples[i];
    totalMs += ms;
    self.set(id, (self.get(id) ?? 0) + ms);
    // Inclusive time of tokengate's own functions: each function once per sample, however deep the recursion.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)!.callFrame;
      if (!/\/dist\/(src|protocols)\//.test(f.url)) continue;
      const key = `${label(f)} ${where(f)}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const e = inclusive.get(key) ?? { fn: label(f), where: where(f), ms: 0 };
      e.ms += ms;
      inclusive.set(key, e);
    }
  }
  const areas = new Map<string, number>();
  const selfByFn = new Map<string, { fn: string; where: string; ms: number }>();
  let idleMs = 0;
  for (const [id, ms] of self) {
    const f = byId.get(id)!.callFrame;
    if (f.functionName === '(idle)') {
      idleMs += ms;
      continue;
    }
    const area = areaOf(f);
    areas.set(area, (areas.get(area) ?? 0) + ms);
    const key = `${label(f)} ${where(f)}`;
    const e = selfByFn.get(key) ?? { fn: label(f), where: where(f), ms: 0 };
    e.ms += ms;
    selfByFn.set(key, e);
  }
  const sorted = <T extends { ms: number }>(xs: Iterable<T>): T[] => [...xs].sort((a, b) => b.ms - a.ms);
  return {
    file,
    totalMs,
    idleMs,
    areas: sorted([...areas].map(([area, ms]) => ({ area, ms }))),
    selfTop: sorted(selfByFn.values()).slice(0, top),
    gatewayInclusive: sorted(inclusive.values()).slice(0, top),
  };
}

export function profileMarkdown(s: ProfileSummary, title: string): string {
  const busy = s.totalMs - s.idleMs;
  const pct = (ms: number): string => `${((ms / busy) * 100).toFixed(1)}%`;
  const out = [
    `#### ${title}`,
    '',
    `Profile \`${path.basename(s.file)}\`: ${(s.totalMs / 1000).toFixed(1)} s sampled, ${(busy / 1000).toFixed(1)} s busy ` +
      `(${((busy / s.totalMs) * 100).toFixed(0)}% of the gateway's main thread); percentages are of busy time.`,
    '',
    '| area (self time) | ms | share |',
    '|---|---:|---:|',
    ...s.areas.slice(0, 15).map((a) => `| ${a.area} | ${a.ms.toFixed(0)} | ${pct(a.ms)} |`),
    '',
    '| hottest functions (self time) | where | ms | share |',
    '|---|---|---:|---:|',
    ...s.selfTop.map((f) => `| \`${f.fn}\` | ${f.where} | ${f.ms.toFixed(0)} | ${pct(f.ms)} |`),
    '',
    '| tokengate functions (inclusive time) | where | ms | share |',
    '|---|---|---:|---:|',
    ...s.gatewayInclusive.slice(0, 12).map((f) => `| \`${f.fn}\` | ${f.where} | ${f.ms.toFixed(0)} | ${pct(f.ms)} |`),
  ];
  return out.join('\n');
}

/** `node profile.js FILE.cpuprofile...`: summarize saved profiles without running the benchmark. */
if (require.main === module) {
  for (const f of process.argv.slice(2)) console.log(profileMarkdown(summarizeProfile(f), path.basename(f)) + '\n');
}
