// Writes the published JSON Schema of the mesh config (schema/mesh-config.schema.json) from the
// zod definition, so the two cannot drift. Run: `npx tsx scripts/write-schema.ts [--check]`.
import { readFile, writeFile } from 'node:fs/promises';
import { meshConfigJsonSchema } from '../src/control/schema.js';

const target = new URL('../schema/mesh-config.schema.json', import.meta.url);
const text = `${JSON.stringify({ ...meshConfigJsonSchema(), $id: 'https://sidecarless.dev/schema/mesh-config.schema.json', title: 'sidecarless mesh config' }, null, 2)}\n`;
if (process.argv.includes('--check')) {
  const current = await readFile(target, 'utf8').catch(() => '');
  if (current !== text) {
    process.stderr.write('schema/mesh-config.schema.json is out of date: run npx tsx scripts/write-schema.ts\n');
    process.exitCode = 1;
  }
} else {
  await writeFile(target, text);
  process.stdout.write(`wrote ${target.pathname}\n`);
}
