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
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { arch, cpus, platform } from 'node:os';
import { join } from 'node:path';
import v8 from 'node:v8';

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

async function round(fn: () => Promise<unknown>, calls: number): Promise<{ ns: number; bytes: number }> {
  // Timed without forcing a collection first: a full gc before each round shrinks the young
  // generation again and charges allocation-heavy cases for scavenges a running process
  // would not do.
  const start = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) await fn();
  const ns = Number(process.hrtime.bigint() - start) / calls;
  return { ns, bytes: await allocation(fn) };
}

/** Bytes in use in the young generation, where every short-lived allocation lands first. */
function youngBytes(): number {
  return v8.getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')?.space_used_size ?? 0;
}

/**
 * Bytes allocated per call: the young generation's growth over short passes of warm code. A
 * pass during which a scavenge ran shows a drop and is discarded; the median of the others is
 * kept. (The bare call's own number is the cost of an async function and its await here.)
 */
async function allocation(fn: () => Promise<unknown>): Promise<number> {
  const calls = 500;
  const samples: number[] = [];
  for (let pass = 0; pass < 15; pass++) {
    const before = youngBytes();
    for (let i = 0; i < calls; i++) await fn();
    const grown = youngBytes() - before;
    if (grown > 0) samples.push(grown / calls);
  }
  return samples.length > 0 ? median(samples) : Number.NaN;
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
};

/** Options of {@link measure}. */
export interface IsolationOptions extends MeasureOptions {
  /**
   * Measure each case in its own process, beside the baseline (default true). In one process
   * every stack shares the call sites of the layers' code, which turns them polymorphic and
   * charges each case for the others; alone, each case is measured as an application with that
   * stack would run it. `false` measures everything in this process.
   */
  isolate?: boolean;
  /** Processes each case is measured in, isolated; the median ratio is kept. Default 3. */
  processes?: number;
}

function caseArgument(): string | undefined {
  const index = process.argv.indexOf('--case');
  return index >= 0 ? process.argv[index + 1] : undefined;
}

async function interleaved(cases: Record<string, () => Promise<unknown>>, calls: number, rounds: number) {
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
  return new Map(names.map((name) => [name, { ns: median(samples.get(name)?.ns ?? []), bytes: median(samples.get(name)?.bytes ?? []) }]));
}

/**
 * Measures each case against the baseline (the first case) in interleaved rounds, so drift of
 * the machine affects both alike, and reports the median round. By default each case runs in a
 * child process of this bench (`--case <name>`) with the baseline beside it; the ratio is taken
 * within that process.
 */
export async function measure(cases: Record<string, () => Promise<unknown>>, options: IsolationOptions = {}): Promise<CaseResult[]> {
  const calls = options.calls ?? 200_000;
  const rounds = options.rounds ?? 7;
  const names = Object.keys(cases);
  const baselineName = names[0] as string;
  const child = caseArgument();
  if (child !== undefined) {
    const subset: Record<string, () => Promise<unknown>> = { [baselineName]: cases[baselineName] as () => Promise<unknown> };
    subset[child] = cases[child] as () => Promise<unknown>;
    const measured = await interleaved(subset, calls, rounds);
    process.stdout.write(`${JSON.stringify({ baseline: measured.get(baselineName), case: measured.get(child) })}\n`);
    process.exit(0);
  }
  if (options.isolate === false) {
    const measured = await interleaved(cases, calls, rounds);
    const base = measured.get(baselineName)?.ns ?? 1;
    return names.map((name) => {
      const m = measured.get(name) as { ns: number; bytes: number };
      return { name, nsPerCall: m.ns, bytesPerCall: m.bytes, ratio: m.ns / base };
    });
  }
  const baselines: number[] = [];
  const baselineBytes: number[] = [];
  const results: CaseResult[] = [];
  // Processes differ in what the JIT decides: each case runs in `processes` of them (default
  // 3), in turn with the other cases, and the median ratio is reported.
  const processes = options.processes ?? 3;
  const runs = new Map<string, { ratio: number; ns: number; bytes: number }[]>(names.slice(1).map((n) => [n, []]));
  for (let p = 0; p < processes; p++) {
    for (const name of names.slice(1)) {
      const run = spawnSync(process.execPath, [...process.execArgv, process.argv[1] as string, '--case', name], { encoding: 'utf8' });
      const line = run.stdout.trim().split('\n').pop() ?? '';
      if (run.status !== 0 || !line.startsWith('{')) throw new Error(`bench case "${name}" failed: ${run.stderr || line}`);
      const parsed = JSON.parse(line) as { baseline: { ns: number; bytes: number }; case: { ns: number; bytes: number } };
      baselines.push(parsed.baseline.ns);
      baselineBytes.push(parsed.baseline.bytes);
      runs.get(name)?.push({ ratio: parsed.case.ns / parsed.baseline.ns, ns: parsed.case.ns, bytes: parsed.case.bytes });
    }
  }
  for (const [name, samples] of runs) {
    const mid = [...samples].sort((a, b) => a.ratio - b.ratio)[Math.floor(samples.length / 2)] as {
      ratio: number;
      ns: number;
      bytes: number;
    };
    results.push({ name, nsPerCall: mid.ns, bytesPerCall: mid.bytes, ratio: mid.ratio });
  }
  return [{ name: baselineName, nsPerCall: median(baselines), bytesPerCall: median(baselineBytes), ratio: 1 }, ...results];
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
