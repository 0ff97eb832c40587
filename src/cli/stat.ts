/**
 * `sidecarless stat <admin-url>`: the golden metrics of every service behind an admin server,
 * as `linkerd viz stat` shows them — success rate, requests per second, p50/p95/p99 latency and
 * retries — refreshed in the terminal, or once (`--once`), or as JSON lines for scripts
 * (`--json`). It reads the admin server's `/api/stats`; nothing is computed here.
 *
 * @module
 */

import { type Command, InvalidArgumentError } from 'commander';
import { type StatsDocument, WINDOW_RANGE } from '../admin/index.js';
import { tryParseDuration } from '../core/duration.js';
import type { ServiceStats } from '../layers/metrics/index.js';

/** Options of {@link runStat}. */
export interface StatOptions {
  /** Refresh interval, ms. */
  intervalMs: number;
  /** Window for rates and percentiles, ms. */
  windowMs: number;
  /** Longest wait for one answer, ms. */
  timeoutMs: number;
  once: boolean;
  json: boolean;
}

const pct = (v: number | null): string => (v === null ? '-' : `${(v * 100).toFixed(2)}%`);
const rps = (v: number): string => `${v >= 100 ? v.toFixed(0) : v.toFixed(1)}rps`;
const ms = (v: number | null): string => (v === null ? '-' : v < 10 ? `${Number(v.toFixed(2))}ms` : `${Math.round(v)}ms`);

/** The table `stat` prints: one row per service (and per attempt view, when measured). */
export function formatStatTable(services: readonly ServiceStats[]): string {
  const header = ['NAME', 'SCOPE', 'SUCCESS', 'RPS', 'LATENCY_P50', 'LATENCY_P95', 'LATENCY_P99', 'RETRIES', 'SKIPPED'];
  const rows = services.map((s) => {
    const r = s.retries;
    const skipped = r.budget + r.not_retryable + r.exhausted + r.deadline + r.cancelled;
    const retries = s.scope === 'call' ? [String(r.retried), String(skipped)] : ['-', '-'];
    return [
      s.service,
      s.scope === 'call' ? 'effective' : 'actual',
      pct(s.successRate),
      rps(s.rps),
      ms(s.latencyMs.p50),
      ms(s.latencyMs.p95),
      ms(s.latencyMs.p99),
      ...retries,
    ];
  });
  if (rows.length === 0) return 'No metrics layers registered behind this admin server.\n';
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] as string).length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i < 2 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number)))
      .join('   ')
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}

/** Fetches `/api/stats` from an admin server; `signal` cancels the read. */
export async function fetchStats(adminUrl: string, windowMs: number, timeoutMs: number, signal?: AbortSignal): Promise<StatsDocument> {
  const url = new URL('api/stats', adminUrl.endsWith('/') ? adminUrl : `${adminUrl}/`);
  url.searchParams.set('window', String(windowMs));
  // Not AbortSignal.any([signal, ...]): the caller's signal lives for the whole run, and Node
  // (20.20 measured) keeps every AbortSignal.any() built on a long-lived signal that fetch
  // listened to (the leak of nodejs/node#55351), one entry per refresh, forever. So each read has its own
  // controller, which follows the caller's signal only while the read is pending.
  const read = new AbortController();
  const cancel = (): void => read.abort(signal?.reason);
  if (signal?.aborted) cancel();
  else signal?.addEventListener('abort', cancel, { once: true });
  try {
    const response = await fetch(url, { signal: AbortSignal.any([read.signal, AbortSignal.timeout(timeoutMs)]) });
    if (!response.ok) throw new Error(`${url.href} answered ${response.status}`);
    return (await response.json()) as StatsDocument;
  } finally {
    signal?.removeEventListener('abort', cancel);
  }
}

/**
 * Why a read failed, in words. fetch says only "fetch failed" and keeps the reason in `cause`
 * (`connect ECONNREFUSED 127.0.0.1:9990`, `getaddrinfo ENOTFOUND admin`), and its timeout says
 * "the operation was aborted due to timeout".
 */
function describeReadFailure(error: unknown, timeoutMs: number): string {
  if (!(error instanceof Error)) return String(error);
  if (error.name === 'TimeoutError') return `no answer within ${timeoutMs}ms`;
  const cause = error.cause;
  if (!(cause instanceof Error)) return error.message;
  const code = (cause as NodeJS.ErrnoException).code;
  // A host with several addresses fails with an AggregateError whose own message may be empty.
  const detail = cause.message || (cause instanceof AggregateError ? cause.errors.map((e) => String(e?.message ?? e)).join('; ') : '');
  if (code === undefined || detail.includes(code)) return detail || error.message;
  return detail ? `${code}: ${detail}` : code;
}

const HTTP_URL_EXAMPLE = 'http://127.0.0.1:9990';

/** Whether `value` is an absolute http or https URL, the only kind `stat` can read. */
function isHttpUrl(value: string): boolean {
  if (!URL.canParse(value)) return false;
  const { protocol, username, password } = new URL(value);
  // fetch refuses a URL with credentials (and would print them with its error on every read).
  return (protocol === 'http:' || protocol === 'https:') && username === '' && password === '';
}

/** Parses the `<admin-url>` argument: refused up front, not once per refresh. */
function adminUrlArgument(value: string): string {
  if (!isHttpUrl(value)) throw new InvalidArgumentError(`must be an http or https url without credentials, e.g. ${HTTP_URL_EXAMPLE}`);
  return value;
}

/**
 * Prints the stats of `adminUrl` to `out`, once or every `intervalMs` until `signal` fires (a
 * pending read included). Returns the exit code: 0, or 1 when a single read failed. Rejects when
 * `adminUrl` is not an http or https URL.
 */
export async function runStat(adminUrl: string, options: StatOptions, out: NodeJS.WritableStream, signal?: AbortSignal): Promise<number> {
  if (!isHttpUrl(adminUrl))
    // Not echoed: it may be the URL with credentials that is refused.
    throw new TypeError(`admin url must be an http or https url without credentials, e.g. ${HTTP_URL_EXAMPLE}`);
  const clear = !options.json && !options.once && (out as { isTTY?: boolean }).isTTY === true;
  for (;;) {
    try {
      const doc = await fetchStats(adminUrl, options.windowMs, options.timeoutMs, signal);
      if (options.json) out.write(`${JSON.stringify(doc)}\n`);
      else {
        const stamp = `${new Date(doc.time).toLocaleTimeString()}  window ${doc.windowMs / 1000}s  ${adminUrl}\n\n`;
        out.write(`${clear ? '\x1b[H\x1b[2J' : ''}${options.once ? '' : stamp}${formatStatTable(doc.services)}`);
      }
    } catch (error) {
      // Stopped while reading: the read was cancelled, it did not fail.
      if (signal?.aborted) return 0;
      process.stderr.write(`sidecarless stat: cannot read ${adminUrl}: ${describeReadFailure(error, options.timeoutMs)}\n`);
      if (options.once) return 1;
    }
    if (options.once || signal?.aborted) return 0;
    const stopped = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', stop);
        resolve(false);
      }, options.intervalMs);
      const stop = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      signal?.addEventListener('abort', stop, { once: true });
    });
    if (stopped) return 0;
  }
}

function durationOption(name: string, min: number, max: number) {
  return (value: string): number => {
    const parsed = tryParseDuration(/^\d+(\.\d+)?$/.test(value) ? Number(value) : value);
    if (parsed === undefined || parsed < min || parsed > max) {
      throw new Error(`--${name} must be a duration such as "2s" or "500ms", from ${min}ms to ${max}ms (got "${value}")`);
    }
    return parsed;
  };
}

/** Registers `stat` on the program. */
export function register(program: Command): void {
  program
    .command('stat')
    .description('golden metrics per service from an admin server, like `linkerd viz stat`')
    .argument('<admin-url>', `the admin server, e.g. ${HTTP_URL_EXAMPLE}`, adminUrlArgument)
    .option('-i, --interval <duration>', 'refresh interval', durationOption('interval', 100, 3_600_000), 2_000)
    .option(
      '-w, --window <duration>',
      'window for rates and percentiles',
      durationOption('window', WINDOW_RANGE.min, WINDOW_RANGE.max),
      10_000,
    )
    .option('--timeout <duration>', 'longest wait for the admin server', durationOption('timeout', 1, 600_000), 5_000)
    .option('--once', 'print once and exit', false)
    .option('--json', 'print the stats document as JSON (one line per refresh)', false)
    .action(async (adminUrl: string, opts: { interval: number; window: number; timeout: number; once: boolean; json: boolean }) => {
      const controller = new AbortController();
      const stop = (): void => controller.abort();
      process.once('SIGINT', stop);
      try {
        const code = await runStat(
          adminUrl,
          { intervalMs: opts.interval, windowMs: opts.window, timeoutMs: opts.timeout, once: opts.once, json: opts.json },
          process.stdout,
          controller.signal,
        );
        // Ctrl-C ends a refreshing stat the way it ends any command: 128 + SIGINT, so that a
        // script running `stat ... && next` stops too.
        if (controller.signal.aborted) process.exitCode = 130;
        else if (code !== 0) process.exitCode = code;
      } finally {
        process.off('SIGINT', stop);
      }
    });
}
