/**
 * Latency buckets and the arithmetic on them. The bounds are linkerd2-proxy's
 * `response_latency_ms` buckets (1 ms to 50 s, four per decade), so dashboards built for
 * Linkerd's golden metrics read ours unchanged; they are exported in seconds, Prometheus's base
 * unit, which `promtool check metrics` insists on.
 *
 * @module
 */

/** Upper bounds of the latency buckets, in milliseconds (Linkerd's). A last `+Inf` bucket follows. */
export const LATENCY_BUCKETS_MS: readonly number[] = Object.freeze([
  1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 100, 200, 300, 400, 500, 1_000, 2_000, 3_000, 4_000, 5_000, 10_000, 20_000, 30_000, 40_000, 50_000,
]);

/** Number of bucket slots, including `+Inf`. */
export const BUCKET_SLOTS = LATENCY_BUCKETS_MS.length + 1;

/**
 * The slot a latency falls in (`le` semantics: a value equal to a bound belongs to it). Linear:
 * most calls are fast and stop in the first few slots, which beats a binary search here.
 */
export function bucketIndex(ms: number): number {
  const bounds = BOUNDS;
  for (let i = 0; i < bounds.length; i++) if (ms <= (bounds[i] as number)) return i;
  return bounds.length;
}

/** The bounds as a typed array: the hot loop above reads unboxed doubles. */
const BOUNDS = new Float64Array(LATENCY_BUCKETS_MS);

/**
 * The `q` quantile (0..1) of a histogram of per-slot (not cumulative) counts, interpolated
 * linearly inside the bucket as Prometheus's `histogram_quantile` does; `null` when empty.
 * A quantile in the `+Inf` slot reports the highest finite bound.
 */
export function quantile(counts: ArrayLike<number>, q: number): number | null {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i] as number;
  if (total === 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    const count = counts[i] as number;
    if (count > 0 && seen + count >= rank) {
      if (i >= LATENCY_BUCKETS_MS.length) return LATENCY_BUCKETS_MS[LATENCY_BUCKETS_MS.length - 1] as number;
      const lower = i === 0 ? 0 : (LATENCY_BUCKETS_MS[i - 1] as number);
      const upper = LATENCY_BUCKETS_MS[i] as number;
      return lower + (upper - lower) * ((rank - seen) / count);
    }
    seen += count;
  }
  return LATENCY_BUCKETS_MS[LATENCY_BUCKETS_MS.length - 1] as number;
}
