/**
 * keepNextTickShape keeps one nextTick queue entry alive so that the entries' object shape (V8
 * map) survives quiet spells with full GCs. Without it, V8 collects the shape, the next entry gets
 * a new one, and nextTick's object-literal feedback goes megamorphic for good: every later
 * nextTick (two per relayed message) defines its properties through V8's runtime.
 *
 * Runs in child processes with --allow-natives-syntax (to compare maps), --expose-gc and V8's map
 * log (--log-maps: every map transition, with the map it starts from and the one it creates),
 * against the built dist/.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');
const MODULE = path.join(ROOT, 'dist/src/v8/nextTickShape.js');

interface ChildResult {
  again: boolean;
  alive: boolean;
  keys: string[];
  sameMap: boolean[];
  /**
   * How many times one map transition on the async-id symbol (the first key of nextTick's entry
   * literal) was created from the same map: 1 while the shape lives; more when a collected shape
   * had to be made again, which is what sends nextTick's feedback megamorphic.
   */
  shapesMade: number;
}

/** The largest number of distinct maps V8 made for one (map, async-id symbol) transition. */
function mostShapesForOneTransition(v8log: string): number {
  const targets = new Map<string, Set<string>>();
  for (const line of v8log.split('\n')) {
    // map,Transition,<time>,<from>,<to>,<pc>,<line>,<column>,<reason>,<name>
    if (!line.startsWith('map,Transition,')) continue;
    const f = line.split(',');
    if (!f.slice(9).join(',').startsWith('symbol("async_id_symbol"')) continue;
    const set = targets.get(f[3]) ?? new Set<string>();
    set.add(f[4]);
    targets.set(f[3], set);
  }
  return Math.max(0, ...[...targets.values()].map((t) => t.size));
}

/**
 * Mixed nextTick traffic, then quiet spells (no queue entry alive, six full GCs), three times.
 * With `keep`, the retained entry is held only weakly here: keeping it alive is the module's job.
 */
function runChild(keep: boolean): ChildResult {
  const child = `
const { createHook } = require('node:async_hooks');
const keep = ${keep};
const { keepNextTickShape } = keep ? require(${JSON.stringify(MODULE)}) : {};
const weak = keep ? new WeakRef(keepNextTickShape()) : undefined;
const again = keep ? keepNextTickShape() === weak.deref() : false;
let latest;
const hook = createHook({ init(id, type, trigger, resource) { if (type === 'TickObject') latest = resource; } });
function entry(...args) { hook.enable(); process.nextTick(...args); hook.disable(); const e = latest; latest = undefined; return e; }
class K { m() {} }
const callbacks = [() => {}, function () {}, (() => {}).bind(null), new K().m, async () => {}];
const sameMap = [];
(async () => {
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 2000; i++) process.nextTick(callbacks[i % callbacks.length], i, round);
    for (const f of callbacks) { process.nextTick(f); process.nextTick(f, 1, 2, 3, 4, 5); }
    await new Promise((r) => setTimeout(r, 20));
    for (let g = 0; g < 6; g++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 5)); }
    for (let i = 0; i < 2000; i++) process.nextTick(callbacks[i % callbacks.length], i, round);
    await new Promise((r) => setTimeout(r, 5));
    const kept = keep ? weak.deref() : undefined;
    sameMap.push(kept !== undefined && %HaveSameMap(kept, entry(() => {}, 1)) && %HaveSameMap(kept, entry(() => {})));
  }
  const kept = keep ? weak.deref() : undefined;
  process.stdout.write('RESULT ' + JSON.stringify({ again, alive: kept !== undefined, keys: kept ? Reflect.ownKeys(kept).map(String) : [], sameMap }) + '\\n');
})();
`;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tg-nexttick-'));
  try {
    const logfile = path.join(dir, 'v8.log');
    const flags = ['--allow-natives-syntax', '--expose-gc', '--log-maps', '--no-log-maps-details', `--logfile=${logfile}`, '--no-logfile-per-isolate'];
    const r = spawnSync(process.execPath, [...flags, '-e', child], { encoding: 'utf8', timeout: 30_000 });
    expect({ status: r.status, signal: r.signal, stderr: r.stderr }).toEqual({ status: 0, signal: null, stderr: '' });
    const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
    if (!line) throw new Error(`the child printed no result:\n${r.stdout.slice(0, 2000)}`);
    return { ...(JSON.parse(line.slice('RESULT '.length)) as Omit<ChildResult, 'shapesMade'>), shapesMade: mostShapesForOneTransition(readFileSync(logfile, 'utf8')) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('keepNextTickShape', () => {
  it('retains a real nextTick entry whose shape every later entry shares, across quiet spells with full GCs', () => {
    const out = runChild(true);
    expect(out.again).toBe(true);
    expect(out.alive).toBe(true);
    expect(out.keys).toEqual(['callback', 'args', 'Symbol(async_id_symbol)', 'Symbol(trigger_async_id_symbol)']);
    expect(out.sameMap).toEqual([true, true, true]);
    // The entry's shape was made once and never again.
    expect(out.shapesMade).toBe(1);
  });

  it('is needed: without it the quiet spells collect the shape and V8 makes it again (if this fails, Node no longer needs the workaround)', () => {
    const out = runChild(false);
    // The quiet spells collected the shape and V8 made it again.
    expect(out.shapesMade).toBeGreaterThan(1);
  });
});
