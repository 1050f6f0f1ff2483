/**
 * keepNextTickShape keeps one nextTick queue entry alive so that the entries' object shape (V8
 * map) survives quiet spells with full GCs. Without it, V8 collects the shape, the next entry gets
 * a new one, and nextTick's object-literal feedback goes megamorphic for good: every later
 * nextTick (two per relayed message) defines its properties through V8's runtime
 * (docs/performance.md, change 13).
 *
 * Runs in child processes with --allow-natives-syntax (to compare maps and print nextTick's
 * feedback with %DebugPrint) and --expose-gc, against the built dist/.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');
const MODULE = path.join(ROOT, 'dist/src/runtime/nextTickShape.js');

interface ChildResult {
  again: boolean;
  alive: boolean;
  keys: string[];
  sameMap: boolean[];
  /** The states of nextTick's DefineKeyedOwnPropertyInLiteral feedback slots, after the quiet spells. */
  literalFeedback: string[];
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
  %DebugPrint(process.nextTick);
})();
`;
  const r = spawnSync(process.execPath, ['--allow-natives-syntax', '--expose-gc', '-e', child], { encoding: 'utf8', timeout: 30_000, maxBuffer: 16 << 20 });
  expect(r.stderr).toBe('');
  const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`the child printed no result:\n${r.stdout.slice(0, 2000)}`);
  const literalFeedback = [...r.stdout.matchAll(/slot #\d+ DefineKeyedOwnPropertyInLiteral (\w+)/g)].map((m) => m[1]);
  return { ...(JSON.parse(line.slice('RESULT '.length)) as Omit<ChildResult, 'literalFeedback'>), literalFeedback };
}

describe('keepNextTickShape', () => {
  it('retains a real nextTick entry whose shape every later entry shares, across quiet spells with full GCs', () => {
    const out = runChild(true);
    expect(out.again).toBe(true);
    expect(out.alive).toBe(true);
    expect(out.keys).toEqual(['callback', 'args', 'Symbol(async_id_symbol)', 'Symbol(trigger_async_id_symbol)']);
    expect(out.sameMap).toEqual([true, true, true]);
    // The literal's four properties, all still monomorphic: V8 can define them inline.
    expect(out.literalFeedback).toEqual(['MONOMORPHIC', 'MONOMORPHIC', 'MONOMORPHIC', 'MONOMORPHIC']);
  });

  it('is needed: without it the same traffic leaves nextTick megamorphic (if this fails, Node no longer needs the workaround)', () => {
    const out = runChild(false);
    expect(out.literalFeedback).toHaveLength(4);
    expect(out.literalFeedback).toContain('MEGAMORPHIC');
  });
});
