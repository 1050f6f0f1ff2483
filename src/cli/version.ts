import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * tokengate's version from its package.json, found by walking up from this file: the same code
 * runs as dist/src/cli/version.js (built or installed from the npm tarball) and as
 * src/cli/version.ts (tests), at different depths.
 */
export function packageVersion(from: string = __dirname): string {
  for (let dir = from; ; dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'tokengate' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // no package.json here (or not readable): keep walking up
    }
    if (dirname(dir) === dir) throw new Error(`cannot find tokengate's package.json above ${from}`);
  }
}
