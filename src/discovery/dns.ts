import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import { z } from 'zod';
import { type Clock, systemClock, type TimerHandle } from '../core/clock.js';
import { type Duration, formatDuration } from '../core/duration.js';
import { InvalidOptionError } from '../core/errors.js';
import type { EventHub } from '../core/events.js';
import { duration, int, num, parseOptions } from '../core/validate.js';
import { SetDiscovery, toEndpoint } from './base.js';
import type { Endpoint, EndpointInput } from './types.js';

/** Options of {@link dnsDiscovery}. */
export interface DnsDiscoveryOptions {
  /** The name to resolve, e.g. `users.default.svc.cluster.local` or `_grpc._tcp.users.example`. */
  name: string;
  /** Records to ask for. `A+AAAA` asks both. Default `A`. */
  type?: 'A' | 'AAAA' | 'A+AAAA' | 'SRV';
  /** Port of every address (A/AAAA; SRV records carry their own). */
  port?: number;
  /**
   * SRV only: the address records asked for each target, as `type` for a name. Default `A`, as
   * for a name: `A+AAAA` opts in to dual stack (a resolver failing AAAA queries then fails the
   * lookup, and an IPv4-only host would get IPv6 endpoints it cannot reach).
   */
  targetType?: 'A' | 'AAAA' | 'A+AAAA';
  /**
   * DNS servers to ask, as IP addresses with an optional port: `"10.0.0.53"`, `"10.0.0.53:5353"`,
   * `"fd00::53"`, `"[fd00::53]:5353"` (not host names: they would need a resolver themselves).
   * Default the system's.
   */
  servers?: readonly string[];
  /** Shortest time between lookups, whatever the TTL says. Default `1s`. */
  minTtl?: Duration;
  /** Longest time between lookups (and the interval when no TTL is known, as for SRV). Default `5m`. */
  maxTtl?: Duration;
  /** Time before another lookup after an error or a suspect empty answer. Default `5s`. */
  retryInterval?: Duration;
  /** Fraction of each interval taken off at random, so clients do not resolve in step. Default 0.1. */
  jitter?: number;
  /** Timeout of one DNS query attempt. Default `2s`. */
  lookupTimeout?: Duration;
  /** Query attempts per server. Default 2. */
  tries?: number;
  /** Consecutive empty answers before an empty set is believed. Default 3. */
  emptyAnswers?: number;
  /** And how long since the first of them. Default `30s`. */
  emptyGrace?: Duration;
  /** Name in events and describe(). Default the DNS name. */
  source?: string;
  clock?: Clock;
  random?: () => number;
  events?: EventHub;
}

const SERVER_ERROR = 'must be an IP address with an optional port, such as "10.0.0.53:5353" or "[fd00::53]:5353"';

/**
 * Whether `node:dns`'s `setServers` takes `server` as meant. Checked here because it throws a
 * bare TypeError on a host name, aborts the process on port 0, and silently wraps a port above
 * 65535 (`:99999` becomes `:34463`).
 */
function isServerAddress(server: string): boolean {
  if (isIP(server) !== 0) return true;
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(server);
  if (match === null) return false;
  const [, v6, v4, port] = match;
  if (v6 !== undefined ? isIP(v6) !== 6 : isIP(v4 as string) !== 4) return false;
  return port === undefined || (Number(port) >= 1 && Number(port) <= 65_535);
}

const schema = z.strictObject({
  name: z.string({ error: 'must be a DNS name' }).regex(/^[A-Za-z0-9_.-]{1,253}$/, { error: 'must be a DNS name' }),
  type: z.enum(['A', 'AAAA', 'A+AAAA', 'SRV'], { error: 'must be "A", "AAAA", "A+AAAA" or "SRV"' }).default('A'),
  port: int(1, 65535).optional(),
  targetType: z.enum(['A', 'AAAA', 'A+AAAA'], { error: 'must be "A", "AAAA" or "A+AAAA"' }).optional(),
  servers: z
    .array(z.string({ error: SERVER_ERROR }).refine(isServerAddress, { error: SERVER_ERROR }), { error: 'must be a list of IP addresses' })
    .min(1, { error: 'must name at least one server' })
    .optional(),
  minTtl: duration(0, 86_400_000).default(1000),
  maxTtl: duration(1, 86_400_000).default(300_000),
  retryInterval: duration(1, 86_400_000).default(5000),
  jitter: num(0, 1).default(0.1),
  lookupTimeout: duration(1, 60_000).default(2000),
  tries: int(1, 10).default(2),
  emptyAnswers: int(1, 1000).default(3),
  emptyGrace: duration(0, 86_400_000).default(30_000),
  source: z.string().min(1).optional(),
  clock: z.custom<Clock>((v) => typeof (v as Clock)?.setTimer === 'function', { error: 'must be a Clock' }).optional(),
  random: z.custom<() => number>((v) => typeof v === 'function', { error: 'must be a function' }).optional(),
  events: z.custom<EventHub>((v) => typeof (v as EventHub)?.emit === 'function', { error: 'must be an EventHub' }).optional(),
});

/** Which address records to ask for. */
type AddressType = 'A' | 'AAAA' | 'A+AAAA';

interface AddressRecord {
  readonly address: string;
  /** Seconds; `undefined` for an SRV target written as an IP address. */
  readonly ttl: number | undefined;
}

/**
 * SRV targets resolved at once, at most. Why a bound: a service with hundreds of targets would
 * otherwise put hundreds of queries (two per target for `A+AAAA`) on the wire in one burst,
 * which resolvers rate-limit or drop; why not one at a time: the lookup would take the sum of
 * the targets' round trips, and one slow target would hold back every other.
 * @internal exported for tests.
 */
export const SRV_TARGET_CONCURRENCY = 8;

/** Resolver codes that mean "the name has no such records": an empty answer, not a failure. */
const EMPTY_CODES = new Set(['ENODATA', 'ENOTFOUND']);

interface Answer {
  readonly endpoints: Endpoint[];
  /** Smallest TTL in the answer, in ms; `undefined` when the records carry none. */
  readonly ttlMs: number | undefined;
}

function isEmptyAnswer(error: unknown): boolean {
  return EMPTY_CODES.has((error as { code?: string })?.code ?? '');
}

/**
 * DNS discovery, resolved periodically: ginepro's lookup loop with its gaps filled. The next
 * lookup is due when the answer's TTL runs out (within `minTtl`..`maxTtl`, minus jitter); a
 * failed lookup is reported (`discovery-error` event, `stats.errors`) and the last good set
 * kept; an empty answer (NODATA/NXDOMAIN, or SRV targets without addresses) is suspect — one
 * flapping resolver must not remove every endpoint — and is only believed after `emptyAnswers`
 * consecutive empties spanning `emptyGrace`. Every timer runs on the given {@link Clock}, one
 * at a time, and `close()` cancels the queries in flight.
 *
 * With `A+AAAA` (for a name, or for SRV targets with `targetType`) one family without records is no
 * error, but a family whose query fails fails the lookup: half an answer would remove the other
 * family's endpoints.
 *
 * Of SRV records only the lowest priority is used (higher ones are backups, RFC 2782); the SRV
 * weight is the target's, split evenly among its addresses. Each target name is resolved once (`targetType` records),
 * several at a time, and one target failing fails the lookup as above. `node:dns` does not
 * expose SRV record TTLs: for SRV the interval is the smallest TTL of the address records used,
 * else `maxTtl`.
 */
export class DnsDiscovery extends SetDiscovery {
  readonly kind = 'dns';
  readonly #options: z.output<typeof schema>;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #resolver: Resolver;
  #timer: TimerHandle | undefined = undefined;
  #inFlight: Promise<void> | undefined = undefined;
  #emptyCount = 0;
  #firstEmptyAt = 0;
  #nextAt = Number.NaN;
  #lastTtlMs: number | undefined = undefined;

  constructor(options: DnsDiscoveryOptions) {
    const parsed = parseOptions(schema, options, 'dns');
    super(parsed.source ?? parsed.name, parsed.events);
    if (parsed.type !== 'SRV' && parsed.port === undefined)
      throw new InvalidOptionError('dns.port', `is required for ${parsed.type} records`);
    if (parsed.type !== 'SRV' && parsed.targetType !== undefined)
      throw new InvalidOptionError('dns.targetType', `applies to SRV records only (type is "${parsed.type}")`);
    if (parsed.minTtl > parsed.maxTtl)
      throw new InvalidOptionError('dns.minTtl', `must not exceed maxTtl (${formatDuration(parsed.maxTtl)})`);
    this.#options = parsed;
    this.#clock = parsed.clock ?? systemClock;
    this.#random = parsed.random ?? Math.random;
    this.#resolver = new Resolver({ timeout: parsed.lookupTimeout, tries: parsed.tries });
    if (parsed.servers !== undefined) this.#resolver.setServers(parsed.servers);
    this.refresh();
  }

  /** Resolves now (unless a lookup is already running); the periodic schedule restarts from it. */
  refresh(): void {
    if (this.closed || this.#inFlight !== undefined) return;
    if (this.#timer !== undefined) this.#clock.clearTimer(this.#timer);
    this.#timer = undefined;
    this.#inFlight = this.#lookup().finally(() => {
      this.#inFlight = undefined;
    });
  }

  /** Resolves once no lookup is in flight (tests, and `close()`). */
  async idle(): Promise<void> {
    while (this.#inFlight !== undefined) await this.#inFlight;
  }

  override describe(): Readonly<Record<string, unknown>> {
    const o = this.#options;
    return {
      ...super.describe(),
      name: o.name,
      type: o.type,
      ...(o.type === 'SRV' ? { targetType: o.targetType ?? 'A' } : {}),
      ttl: this.#lastTtlMs === undefined ? 'unknown' : formatDuration(this.#lastTtlMs),
      nextLookupIn: Number.isNaN(this.#nextAt) ? 'none' : formatDuration(Math.max(0, this.#nextAt - this.#clock.now())),
      bounds: { minTtl: formatDuration(o.minTtl), maxTtl: formatDuration(o.maxTtl) },
    };
  }

  override async close(): Promise<void> {
    if (this.closed) return this.idle();
    super.close();
    if (this.#timer !== undefined) this.#clock.clearTimer(this.#timer);
    this.#timer = undefined;
    this.#nextAt = Number.NaN;
    this.#resolver.cancel();
    await this.idle();
  }

  async #lookup(): Promise<void> {
    this.stats.lookups++;
    let answer: Answer;
    try {
      answer = await this.#resolve();
    } catch (error) {
      if (this.closed) return;
      if (isEmptyAnswer(error)) this.#empty();
      else {
        this.failed(error);
        this.#schedule(this.#options.retryInterval);
      }
      return;
    }
    if (this.closed) return;
    if (answer.endpoints.length === 0) {
      this.#empty();
      return;
    }
    this.#emptyCount = 0;
    this.#lastTtlMs = answer.ttlMs;
    this.publish(answer.endpoints);
    const o = this.#options;
    this.#schedule(Math.min(o.maxTtl, Math.max(o.minTtl, answer.ttlMs ?? o.maxTtl)));
  }

  #empty(): void {
    this.stats.empty++;
    const now = this.#clock.now();
    if (this.#emptyCount++ === 0) this.#firstEmptyAt = now;
    const hadEndpoints = this.endpoints().size > 0;
    const believe =
      !hadEndpoints || (this.#emptyCount >= this.#options.emptyAnswers && now - this.#firstEmptyAt >= this.#options.emptyGrace);
    if (this.events.wants('discovery-empty')) {
      this.events.emit('discovery-empty', { source: this.source, kind: this.kind, consecutive: this.#emptyCount, kept: !believe });
    }
    if (believe) {
      this.publish([]);
      this.#schedule(this.#options.maxTtl < this.#options.retryInterval ? this.#options.maxTtl : this.#options.retryInterval);
    } else {
      // Come back sooner than the TTL: either the set returns or the grace runs out.
      this.#schedule(this.#options.retryInterval);
    }
  }

  #schedule(intervalMs: number): void {
    if (this.closed) return;
    const delay = intervalMs * (1 - this.#options.jitter * this.#random());
    this.#nextAt = this.#clock.now() + delay;
    this.#timer = this.#clock.setTimer(() => {
      this.#timer = undefined;
      this.refresh();
    }, delay);
  }

  async #resolve(): Promise<Answer> {
    const { type, name, port } = this.#options;
    if (type === 'SRV') return this.#resolveSrv();
    return answerOf((await this.#addresses(name, type)).map((record) => ({ ...record, port })));
  }

  /** The address records of `name`; none when it has none (NODATA, NXDOMAIN). */
  async #addresses(name: string, type: AddressType): Promise<readonly AddressRecord[]> {
    const resolver = this.#resolver;
    if (type !== 'A+AAAA') {
      try {
        return await (type === 'A' ? resolver.resolve4(name, { ttl: true }) : resolver.resolve6(name, { ttl: true }));
      } catch (error) {
        if (isEmptyAnswer(error)) return [];
        throw error;
      }
    }
    const [v4, v6] = await Promise.allSettled([resolver.resolve4(name, { ttl: true }), resolver.resolve6(name, { ttl: true })]);
    for (const outcome of [v4, v6]) if (outcome.status === 'rejected' && !isEmptyAnswer(outcome.reason)) throw outcome.reason;
    return [...(v4.status === 'fulfilled' ? v4.value : []), ...(v6.status === 'fulfilled' ? v6.value : [])];
  }

  async #resolveSrv(): Promise<Answer> {
    const records = await this.#resolver.resolveSrv(this.#options.name);
    let best = Number.POSITIVE_INFINITY;
    for (const r of records) if (r.priority < best) best = r.priority;
    const chosen = records.filter((r) => r.priority === best);
    const resolved = await this.#resolveTargets([...new Set(chosen.filter((r) => isIP(r.name) === 0).map((r) => r.name))]);
    const found: Found[] = [];
    for (const srv of chosen) {
      const targets = isIP(srv.name) !== 0 ? [{ address: srv.name, ttl: undefined }] : (resolved.get(srv.name) ?? []);
      const metadata = { target: srv.name, priority: srv.priority, srvWeight: srv.weight };
      // The weight is the target's (RFC 2782): its addresses share it, so a dual-stack target
      // (or one with several A records) draws the share its record asks for, not a multiple.
      const weight = Math.max(1, srv.weight) / targets.length;
      for (const target of targets) found.push({ ...target, port: srv.port, weight, metadata });
    }
    return answerOf(found);
  }

  /**
   * The address records of each name, {@link SRV_TARGET_CONCURRENCY} names at a time. After a
   * failure no further name is started, but the lookup still waits for those in flight, so no
   * query outlives it (`idle()` means idle) and none rejects unobserved; the first failure is
   * then the lookup's.
   */
  async #resolveTargets(names: readonly string[]): Promise<Map<string, readonly AddressRecord[]>> {
    const type = this.#options.targetType ?? 'A';
    const found = new Map<string, readonly AddressRecord[]>();
    let next = 0;
    let failure: { error: unknown } | undefined;
    const worker = async (): Promise<void> => {
      while (next < names.length && failure === undefined && !this.closed) {
        const name = names[next++] as string;
        try {
          found.set(name, await this.#addresses(name, type));
        } catch (error) {
          failure ??= { error };
        }
      }
    };
    const workers: Promise<void>[] = [];
    for (let i = 0; i < Math.min(SRV_TARGET_CONCURRENCY, names.length); i++) workers.push(worker());
    await Promise.all(workers);
    if (failure !== undefined) throw failure.error;
    return found;
  }
}

/** An address found, with what its endpoint gets. */
type Found = EndpointInput & AddressRecord;

/** The endpoints of the addresses found, and the smallest TTL among them. */
function answerOf(found: readonly Found[]): Answer {
  let ttl = Number.POSITIVE_INFINITY;
  for (const record of found) if (record.ttl !== undefined && record.ttl < ttl) ttl = record.ttl;
  return { endpoints: found.map(toEndpoint), ttlMs: ttl === Number.POSITIVE_INFINITY ? undefined : ttl * 1000 };
}

/** Periodic DNS discovery: `dnsDiscovery({ name: 'users.internal', port: 8080 })`. */
export function dnsDiscovery(options: DnsDiscoveryOptions): DnsDiscovery {
  return new DnsDiscovery(options);
}
