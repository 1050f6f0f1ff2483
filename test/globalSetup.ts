/**
 * Builds dist/ once per Jest run, because some tests run the real binary (bin/tokengate.js
 * loads dist/src/cli/main.js). Skipped when the selected test paths include none of those tests,
 * so running other suites costs nothing and is not blocked by someone else's half-edited file.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

interface JestGlobalConfig {
  rootDir: string;
  testPathPattern?: string;
}

/** Where the tests that run bin/tokengate.js live; add a directory here when another suite does. */
const BINARY_TEST_DIRS = ['test/cli', 'test/demo', 'test/v8', 'test/lifecycle', 'test/security'];
/** Serializes builds of engineers and CI jobs sharing this tree. */
const BUILD_LOCK = '/tmp/tokengate-build.lock';

function binaryTests(root: string): string[] {
  return BINARY_TEST_DIRS.flatMap((d) => {
    const dir = join(root, d);
    return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.test.ts')).map((f) => join(dir, f)) : [];
  });
}

function binaryTestsSelected(g: JestGlobalConfig): boolean {
  if (!g.testPathPattern) return true;
  try {
    const re = new RegExp(g.testPathPattern, 'i');
    return binaryTests(g.rootDir).some((p) => re.test(p));
  } catch {
    return true;
  }
}

export default function globalSetup(globalConfig: JestGlobalConfig): void {
  if (!binaryTestsSelected(globalConfig)) return;
  const root = globalConfig.rootDir;
  const tsc = ['npx', 'tsc', '-p', 'tsconfig.build.json'];
  const [cmd, args] = existsSync('/usr/bin/flock') ? ['/usr/bin/flock', [BUILD_LOCK, ...tsc]] : [tsc[0], tsc.slice(1)];
  try {
    execFileSync(cmd, args, { cwd: root, stdio: 'pipe', timeout: 180_000 });
  } catch (err) {
    const e = err as { status?: number | null; stdout?: Buffer; message: string };
    const output = e.stdout?.toString() ?? e.message;
    // tsc exits 2 when it reports type errors but still emitted JavaScript; `npm run lint` is where those fail.
    if (e.status !== 2) throw new Error(`building dist/ for the tests that run bin/tokengate.js failed (npx tsc -p tsconfig.build.json):\n${output}`);
    console.warn(`npx tsc -p tsconfig.build.json reported type errors; the tests of bin/tokengate.js run the JavaScript it emitted anyway:\n${output}`);
  }
  if (!existsSync(join(root, 'dist', 'src', 'cli', 'main.js'))) {
    throw new Error('npx tsc -p tsconfig.build.json did not produce dist/src/cli/main.js, which bin/tokengate.js needs');
  }
}
