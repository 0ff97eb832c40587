#!/usr/bin/env node
// Runs the built CLI when installed; from a checkout, falls back to the TypeScript sources.
// SIDECARLESS_FROM_SOURCE=1 forces the sources even when dist/ exists: a checkout's dist/ is
// whatever was built last, and the tests must run the code they test.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const built = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
let mod;
if (process.env.SIDECARLESS_FROM_SOURCE !== '1' && existsSync(built)) mod = await import(built);
else {
  await import('tsx/esm');
  mod = await import('../src/cli/main.ts');
}
process.exitCode = await mod.main(process.argv);
