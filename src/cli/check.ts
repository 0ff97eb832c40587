/**
 * `sidecarless check mesh.yaml`: validates a mesh config file and prints every problem, one per
 * line as `field: message`; exits 1 if there is any.
 *
 * @module
 */
import { readFile } from 'node:fs/promises';
import { type Command, InvalidArgumentError } from 'commander';
import { DEFAULT_MAX_BYTES, meshValidator } from '../control/document.js';

/** Checks `path`; returns the exit code and writes the report to `out`/`err`. */
export async function checkFile(
  path: string,
  options: { maxBytes?: number } = {},
  out: (line: string) => void = (l) => process.stdout.write(`${l}\n`),
  err: (line: string) => void = (l) => process.stderr.write(`${l}\n`),
): Promise<number> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    err(`${path}: cannot read: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    return 1;
  }
  const result = meshValidator({ maxBytes: options.maxBytes ?? DEFAULT_MAX_BYTES })(bytes);
  if (result.ok) {
    const services = Object.keys(result.value.services);
    out(`${path}: ok (${services.length} service${services.length === 1 ? '' : 's'}: ${services.join(', ') || 'none'})`);
    return 0;
  }
  err(`${path}: ${result.problems.length} problem${result.problems.length === 1 ? '' : 's'}`);
  for (const p of result.problems) err(`  ${p.field}: ${p.message}`);
  return 1;
}

const MAX_BYTES_LIMIT = 1_073_741_824;

// Number.parseInt would read "abc" as NaN, which compares false with every size: no limit at all.
function maxBytesFlag(value: string): number {
  const n = /^\d+$/.test(value.trim()) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_BYTES_LIMIT)
    throw new InvalidArgumentError(`must be an integer from 1 to ${MAX_BYTES_LIMIT}`);
  return n;
}

/** Registers `check`. */
export function register(program: Command): void {
  program
    .command('check')
    .description('validate a mesh config file (YAML or JSON) and print every problem')
    .argument('<file>', 'the mesh config file')
    .option('--max-bytes <n>', `largest document accepted, 1 to ${MAX_BYTES_LIMIT} bytes`, maxBytesFlag)
    .action(async (file: string, opts: { maxBytes?: number }) => {
      process.exitCode = await checkFile(file, opts);
    });
}
