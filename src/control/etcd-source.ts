/**
 * etcd as a config source, for deployments that outgrow one control server: each key under a
 * prefix holds one service's config (YAML or JSON) — `/sidecarless/mesh/users` is
 * `services.users` — and etcd's revision is the document's version.
 *
 * The source reads the whole prefix, then watches it from the next revision. Whenever the watch
 * cannot be trusted — its revision was compacted away, the stream broke, etcd restarted — it
 * reads the prefix again and watches from there, retrying with a jittered backoff while etcd is
 * unreachable. A re-read that finds the same content delivers nothing.
 *
 * Needs the optional peer dependency `etcd3`. Its own gRPC reconnect timers are outside the
 * {@link Clock}; this source's are on it.
 *
 * @module
 */

import type { Etcd3, IKeyValue, IOptions, Watcher } from 'etcd3';
import { type Clock, systemClock } from '../core/clock.js';
import type { OptionProblem } from '../core/errors.js';
import { type BackoffParams, backoffDelay, resolveBackoff } from '../layers/retry/backoff.js';
import { type DocumentLimits, parseMeshText, resolveLimits } from './document.js';
import type { ConfigSink, ConfigSource } from './source.js';

/** Options of {@link etcdSource}. */
export interface EtcdSourceOptions {
  /** etcd endpoints, e.g. `http://127.0.0.1:2379`. */
  hosts: string | string[];
  /** Key prefix; each key below it is one service. Default `/sidecarless/mesh/`. */
  prefix?: string;
  /** More options for the `etcd3` client (credentials, auth, ...). */
  etcd?: Omit<IOptions, 'hosts'>;
  /** Limits applied to each key's value. */
  limits?: DocumentLimits;
  clock?: Clock;
  random?: () => number;
  /** Called when a read or the watch fails, before retrying. */
  onError?: (error: Error) => void;
}

/** A key prefix in etcd as a {@link ConfigSource}. */
export function etcdSource(options: EtcdSourceOptions): ConfigSource {
  return new EtcdSource(options);
}

// etcd3's default fault policies retry and open a breaker for seconds after a few failures;
// this source has its own re-read loop, so each call simply fails fast. (Async: etcd3 chains
// `.catch` on the result, so a synchronous throw would escape as an uncaught exception.)
/** How long close() waits for a read or watch creation in flight. */
const CLOSE_WAIT_MS = 1000;
/** How long one read, watch creation or cancel may take before the source retries. */
const STEP_TIMEOUT_MS = 5000;

const passThrough = { execute: async (fn: (context: { signal: AbortSignal }) => unknown) => fn({ signal: new AbortController().signal }) };

class EtcdSource implements ConfigSource {
  readonly name: string;
  readonly #options: EtcdSourceOptions;
  readonly #prefix: string;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #backoff: BackoffParams;
  readonly #limits: Required<DocumentLimits>;
  #client: Etcd3 | undefined;
  #watcher: Watcher | undefined;
  #sink: ConfigSink | undefined;
  #values = new Map<string, string>();
  #lastDelivered = '';
  #timer: unknown;
  #failures = 0;
  #previousDelay = 0;
  #generation = 0;
  #running: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(options: EtcdSourceOptions) {
    this.#limits = resolveLimits(options.limits);
    this.#options = options;
    this.#prefix = options.prefix ?? '/sidecarless/mesh/';
    this.name = `etcd:${[options.hosts].flat().join(',')}${this.#prefix}`;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#backoff = resolveBackoff({ base: 100, max: 5000, jitter: 'equal' }, 'etcd.backoff');
  }

  start(sink: ConfigSink): void {
    this.#sink = sink;
    this.#resync();
  }

  async #connect(): Promise<Etcd3> {
    if (this.#client === undefined) {
      // Loaded only when used: etcd3 is an optional peer dependency.
      const { Etcd3 } = await import('etcd3');
      this.#client = new Etcd3({
        dialTimeout: 2000,
        faultHandling: { host: () => passThrough as never, global: passThrough as never },
        ...this.#options.etcd,
        hosts: this.#options.hosts,
      });
    }
    return this.#client;
  }

  /** Drops the watch, reads the prefix again and watches from the revision read. */
  #resync(): void {
    if (this.#closed) return;
    const generation = ++this.#generation;
    this.#running = this.#running.then(() => this.#readAndWatch(generation)).catch((error: Error) => this.#failed(generation, error));
  }

  async #readAndWatch(generation: number): Promise<void> {
    if (this.#closed || generation !== this.#generation) return;
    await this.#withinStepTimeout(this.#dropWatcher());
    const client = await this.#connect();
    const res = await this.#withinStepTimeout(client.getAll().prefix(this.#prefix).exec());
    if (this.#closed || generation !== this.#generation) return;
    this.#values = new Map(res.kvs.map((kv) => [kv.key.toString(), kv.value.toString()]));
    const revision = BigInt(res.header.revision);
    this.#emit(String(revision));
    const watcher = await this.#withinStepTimeout(
      client
        .watch()
        .prefix(this.#prefix)
        .startRevision(String(revision + 1n))
        .create(),
    );
    if (this.#closed || generation !== this.#generation) {
      await watcher.cancel().catch(() => {});
      return;
    }
    this.#watcher = watcher;
    this.#failures = 0;
    this.#previousDelay = 0;
    watcher.on('data', (data) => {
      for (const event of data.events) this.#apply(event.type, event.kv);
      if (data.events.length > 0) this.#emit(String(data.header.revision));
    });
    // A broken stream, an etcd restart or a compacted revision: the watch may have missed
    // changes, so read everything again rather than trust it.
    watcher.on('disconnected', () => this.#resync());
    watcher.on('error', () => this.#resync());
  }

  #apply(type: string, kv: IKeyValue): void {
    const key = kv.key.toString();
    if (type === 'Delete') this.#values.delete(key);
    else this.#values.set(key, kv.value.toString());
  }

  #failed(generation: number, error: Error): void {
    if (this.#closed || generation !== this.#generation) return;
    // Start the next attempt on a fresh connection: the old client's channel may be the part
    // that is stuck (its own reconnection timers are not ours to drive).
    const stale = this.#client;
    this.#client = undefined;
    void this.#dropWatcher();
    stale?.close();
    this.#options.onError?.(error);
    this.#failures++;
    const delay = backoffDelay(this.#backoff, this.#failures, this.#previousDelay, this.#random);
    this.#previousDelay = delay;
    this.#timer = this.#clock.setTimer(() => {
      this.#timer = undefined;
      this.#resync();
    }, delay);
  }

  /**
   * A read, a watch creation or a cancel that takes longer than {@link STEP_TIMEOUT_MS} fails,
   * so the source retries instead of waiting forever on a call etcd will never answer (such
   * calls carry no deadline of their own).
   */
  #withinStepTimeout<T>(step: Promise<T>): Promise<T> {
    let timer: unknown;
    const expired = new Promise<never>((_, reject) => {
      timer = this.#clock.setTimer(() => reject(new Error(`etcd did not answer within ${STEP_TIMEOUT_MS}ms`)), STEP_TIMEOUT_MS);
    });
    step.catch(() => {}); // a step abandoned at its deadline may still fail later
    return Promise.race([step, expired]).finally(() => this.#clock.clearTimer(timer));
  }

  /** Assembles `{ services }` from the keys and delivers it, unless it is what was delivered last. */
  #emit(version: string): void {
    const services: Record<string, unknown> = {};
    const problems: OptionProblem[] = [];
    const keys = [...this.#values.keys()].sort();
    for (const key of keys) {
      const name = key.slice(this.#prefix.length);
      const parsed = parseMeshText(this.#values.get(key) as string, this.#limits);
      if (parsed.ok) Object.defineProperty(services, name, { value: parsed.value, enumerable: true, writable: true, configurable: true });
      else for (const p of parsed.problems) problems.push({ field: `services.${name}`, message: p.message });
    }
    const fingerprint = JSON.stringify(keys.map((k) => [k, this.#values.get(k)]));
    if (fingerprint === this.#lastDelivered) return;
    this.#lastDelivered = fingerprint;
    if (problems.length > 0) this.#sink?.deliver({ version, problems });
    else this.#sink?.deliver({ version, raw: { services } });
  }

  async #dropWatcher(): Promise<void> {
    const watcher = this.#watcher;
    this.#watcher = undefined;
    if (watcher === undefined) return;
    watcher.removeAllListeners();
    // A watcher that errored is already gone at etcd; cancelling it may fail, harmlessly.
    watcher.on('error', () => {});
    await watcher.cancel().catch(() => {});
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) this.#clock.clearTimer(this.#timer);
    this.#timer = undefined;
    // A read or a watch creation in flight has no deadline of its own: wait for it a little,
    // not forever (etcd may be gone), then drop the watch and close the client.
    let waited: unknown;
    await Promise.race([
      this.#running.catch(() => {}),
      new Promise<void>((resolve) => {
        waited = this.#clock.setTimer(resolve, CLOSE_WAIT_MS);
      }),
    ]);
    this.#clock.clearTimer(waited);
    // The cancel goes out on the watch stream; closing the client does not wait for its answer.
    void this.#dropWatcher();
    this.#client?.close();
    this.#client = undefined;
  }
}
