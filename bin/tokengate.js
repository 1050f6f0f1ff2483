#!/usr/bin/env node
'use strict';
// The CLI is compiled TypeScript (npm ci runs `prepare`, which builds dist/).
let main;
try {
  // First, before any module loads and collects garbage: keeps nextTick on V8's fast path (see the module).
  require('../dist/src/v8/nextTickShape.js').keepNextTickShape();
  ({ main } = require('../dist/src/cli/main.js'));
} catch (err) {
  if (err && err.code === 'MODULE_NOT_FOUND') {
    console.error('tokengate is not built yet: run `npm run build` (npm ci does it for you) and try again.');
    process.exit(1);
  }
  throw err;
}
main(process.argv).catch((err) => {
  console.error(err && err.message ? err.message : err);
  process.exit(1);
});
