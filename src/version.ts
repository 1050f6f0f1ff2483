import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** tokengate's version from its package.json (found upward from this file: src/ when run by ts-jest, dist/src/ when built). */
export function packageVersion(): string {
  for (let dir = __dirname; ; dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'tokengate' && pkg.version) return pkg.version;
    } catch {
      // no package.json here: look further up
    }
    if (dirname(dir) === dir) return 'unknown';
  }
}
