/**
 * A small benchmark harness shared by every file in bench/: ns per call and bytes allocated per
 * call of async functions, measured side by side in one process so that results are ratios
 * against the bare call of the same run, not absolute numbers from another day.
 *
 * Benches run on the tsc output, as users run the library (tsx's transform keeps function names
 * by wrapping each named closure in a helper call, which distorts per-call costs and heap):
 * `npm run bench:<name>` compiles with `tsconfig.bench.json` and runs
 * `node --expose-gc build/bench/<name>.bench.js` from the repository root. Results are printed
 * as a table and written to bench/results/<name>.md with the command that produced them.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { arch, cpus, platform } from 'node:os';
import { join } from 'node:path';

/** One measured case. */
export interface CaseResult {
  readonly name: string;
  readonly nsPerCall: number;
  readonly bytesPerCall: number;
  /** nsPerCall divided by the baseline's. */
  readonly ratio: number;
}

/** Options of {@link measure}. */
export interface MeasureOptions {
  /** Calls per round. Default 200,000. */
  calls?: number;
  /** Rounds; the median round is reported. Default 7. */
  rounds?: number;
}

const gc = (globalThis as { gc?: () => void }).gc;

async function round(fn: () => Promise<unknown>, calls: number): Promise<{ ns: number; bytes: number }> {
  gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  const start = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) await fn();
  const ns = Number(process.hrtime.bigint() - start) / calls;
  const bytes = Math.max(0, process.memoryUsage().heapUsed - heapBefore) / calls;
  return { ns, bytes };
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
};

/**
 * Measures each case (the first is the baseline) in interleaved rounds, so drift of the machine
 * affects all cases alike, and reports the median round of each.
 */
export async function measure(cases: Record<string, () => Promise<unknown>>, options: MeasureOptions = {}): Promise<CaseResult[]> {
  const calls = options.calls ?? 200_000;
  const rounds = options.rounds ?? 7;
  const names = Object.keys(cases);
  const samples = new Map<string, { ns: number[]; bytes: number[] }>(names.map((n) => [n, { ns: [], bytes: [] }]));
  for (const name of names) await round(cases[name] as () => Promise<unknown>, Math.min(calls, 20_000)); // warm up
  for (let r = 0; r < rounds; r++) {
    for (const name of names) {
      const { ns, bytes } = await round(cases[name] as () => Promise<unknown>, calls);
      samples.get(name)?.ns.push(ns);
      samples.get(name)?.bytes.push(bytes);
    }
  }
  const baseline = median(samples.get(names[0] as string)?.ns ?? [1]);
  return names.map((name) => {
    const s = samples.get(name) as { ns: number[]; bytes: number[] };
    const ns = median(s.ns);
    return { name, nsPerCall: ns, bytesPerCall: median(s.bytes), ratio: ns / baseline };
  });
}

/** Formats results as a markdown table. */
export function table(results: readonly CaseResult[]): string {
  const lines = ['| case | ns/call | ratio to bare | bytes/call |', '|---|---:|---:|---:|'];
  for (const r of results) lines.push(`| ${r.name} | ${r.nsPerCall.toFixed(0)} | ${r.ratio.toFixed(2)}x | ${r.bytesPerCall.toFixed(0)} |`);
  return lines.join('\n');
}

/** A line saying where and with what the numbers were taken. */
export function machineLine(): string {
  return `Node ${process.version}, ${platform()}/${arch()}, ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${new Date().toISOString()}`;
}

/** Writes bench/results/<name>.md: the command, the machine, the tables and the checks. */
export function writeResults(name: string, command: string, body: string): void {
  const dir = join(process.cwd(), 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const text = `# ${name}\n\nCommand: \`${command}\`\n\n${machineLine()}\n\n${body}\n`;
  writeFileSync(join(dir, `${name}.md`), text);
  process.stdout.write(`${text}\n`);
}

/** A target check: `value <= limit`, printed as PASS/FAIL. */
export function check(label: string, value: number, limit: number, unit = 'x'): { ok: boolean; line: string } {
  const ok = value <= limit;
  return { ok, line: `- ${ok ? 'PASS' : 'FAIL'} ${label}: ${value.toFixed(2)}${unit} (target <= ${limit}${unit})` };
}
