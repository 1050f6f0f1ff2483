/** CPU time of a process and facts about the machine, from /proc. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

let ticksPerSecond: number | undefined;

function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/**
 * User + system CPU of a whole process (all its threads, including libuv's pool) in
 * microseconds, from /proc/PID/stat fields 14 and 15. Resolution is one clock tick (10 ms),
 * which is fine over a run of several seconds.
 */
/** User and system (kernel) CPU a process has used so far, in microseconds, from /proc/PID/stat. */
export function processCpu(pid: number): { user: number; system: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Field 2 (comm) is in parentheses and may contain spaces: count fields after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const toMicros = (ticks: string): number => (Number(ticks) * 1e6) / clockTicks();
  return { user: toMicros(fields[14 - 3]), system: toMicros(fields[15 - 3]) };
}

/** The 1-minute load average, as `uptime` shows it. */
export function load1(): number {
  return os.loadavg()[0];
}

export function uptimeLine(): string {
  try {
    return execFileSync('uptime').toString().trim();
  } catch {
    return `load average: ${os.loadavg().map((l) => l.toFixed(2)).join(', ')}`;
  }
}

function firstLine(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString().split('\n')[0].trim();
  } catch {
    return 'not installed';
  }
}

export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  kernel: string;
  node: string;
  postgres: string;
  pgbench: string;
  pgbouncer: string;
  mariadb: string;
  sysbench: string;
}

export function describeMachine(pgBin: string): MachineInfo {
  let cpuModel = os.cpus()[0]?.model ?? 'unknown';
  try {
    const m = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpuModel = m[1].trim();
  } catch {
    /* keep os.cpus() */
  }
  return {
    cpus: os.availableParallelism(),
    cpuModel,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    postgres: firstLine(`${pgBin}/postgres`, ['--version']),
    pgbench: firstLine('pgbench', ['--version']),
    pgbouncer: firstLine('pgbouncer', ['--version']),
    mariadb: firstLine('mariadbd', ['--version']),
    sysbench: firstLine('sysbench', ['--version']),
  };
}
