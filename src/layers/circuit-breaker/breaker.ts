import type { CallContext } from '../../core/context.js';
import { formatDuration } from '../../core/duration.js';
import { CircuitOpenError, InvalidOptionError, isRefusal, ServiceClosedError } from '../../core/errors.js';
import { type CallHooks, callThroughHooks } from '../../core/hooks.js';
import type { Param } from '../../core/params.js';
import { describeChain, type LayerDescription, type Service, type StackEnv } from '../../core/service.js';
import { innerReady } from '../load-shed/admission.js';
import { type CircuitBreakerParams, probeDelay } from './options.js';
import { makeWindow, type RollingWindow, TimeWindow, type WindowSnapshot } from './window.js';

/** The states of a circuit. `isolated` is open by hand until {@link CircuitBreakerService.reset}. */
export type CircuitState = 'closed' | 'open' | 'half-open' | 'isolated';

/** Why a circuit changed state. */
export type CircuitReason =
  | 'consecutive-failures'
  | 'failure-rate'
  | 'backoff-elapsed'
  | 'probe-failed'
  | 'probes-succeeded'
  | 'isolated'
  | 'reset'
  | 'restored';

/** A circuit's state, exported to carry it across a restart (see {@link CircuitBreakerService.restore}). */
export interface CircuitSnapshot {
  readonly state: CircuitState;
  /** Failed probes since the circuit last closed: the backoff step. */
  readonly failedProbes: number;
  /** Failures in a row (closed state). */
  readonly consecutiveFailures: number;
  /** Milliseconds until the next probe when exported (open state), else 0. */
  readonly retryInMs: number;
  /** Wall-clock time of the export, so the wait left can be computed on restore. */
  readonly exportedAt: number;
  /** The failure-rate window's outcomes, when the breaker keeps one. */
  readonly window?: WindowSnapshot | undefined;
}

const STATES: readonly CircuitState[] = ['closed', 'open', 'half-open', 'isolated'];

/** The service of the circuit-breaker layer; see the module doc in `index.ts`. */
export class CircuitBreakerService<Req, Res> implements Service<Req, Res>, CallHooks {
  readonly #inner: Service<Req, Res>;
  readonly #param: Param<CircuitBreakerParams>;
  readonly #env: StackEnv;
  #params: CircuitBreakerParams;
  #window: RollingWindow | undefined;
  #state: CircuitState = 'closed';
  /** Bumped on every transition: outcomes of calls admitted in an earlier state are ignored. */
  #generation = 0;
  #consecutive = 0;
  #failedProbes = 0;
  #retryAt = 0;
  #probesInFlight = 0;
  #probeSuccesses = 0;
  #closed = false;

  constructor(inner: Service<Req, Res>, param: Param<CircuitBreakerParams>, env: StackEnv) {
    this.#inner = inner;
    this.#param = param;
    this.#env = env;
    this.#params = param.get();
    this.#window = this.#params.failureRate && makeWindow(this.#params.failureRate.window);
  }

  /** The current state (an open circuit whose backoff elapsed turns half-open on the next call). */
  get state(): CircuitState {
    return this.#state;
  }

  /** Clock time of the next probe while open; `Infinity` while isolated. */
  get retryAt(): number {
    return this.#state === 'isolated' ? Number.POSITIVE_INFINITY : this.#state === 'open' ? this.#retryAt : 0;
  }

  call(req: Req, ctx: CallContext): Promise<Res> {
    return callThroughHooks(this, this.#inner, req, ctx);
  }

  /** @internal admission: the generation of the state that admitted the call, or a refusal. */
  admit(_ctx: CallContext): number | Error {
    if (this.#closed) return new ServiceClosedError({ layer: 'circuit-breaker' });
    const params = this.#param.get();
    if (params !== this.#params) this.#adopt(params);
    const state = this.#state;
    if (state === 'closed') return this.#generation;
    if (state === 'isolated') return new CircuitOpenError(Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY, { layer: 'circuit-breaker' });
    const now = this.#env.clock.now();
    if (state === 'open') {
      if (now < this.#retryAt) return new CircuitOpenError(this.#retryAt, this.#retryAt - now);
      this.#transition('half-open', 'backoff-elapsed');
    }
    if (this.#probesInFlight >= params.probes) {
      // A probe is under way; its outcome decides, so there is no better time to give.
      return new CircuitOpenError(now, 0);
    }
    this.#probesInFlight++;
    return this.#generation;
  }

  /** @internal an admitted call settled. */
  settled(generation: number, threw: boolean, outcome: unknown, ctx: CallContext): void {
    if (generation !== this.#generation) return;
    const halfOpen = this.#state === 'half-open';
    if (halfOpen) this.#probesInFlight--;
    // A call the caller gave up on, or one a layer beneath refused before sending it, says nothing
    // about the backend.
    if (threw && (ctx.cancelled || isRefusal(outcome))) return;
    const classifier = this.#env.classifier;
    const failed = (threw ? classifier.classifyError(outcome) : classifier.classifyResult(outcome)).kind === 'failure';
    if (halfOpen) {
      if (failed) {
        this.#failedProbes++;
        this.#open('probe-failed');
      } else if (++this.#probeSuccesses >= this.#params.probes) {
        this.#failedProbes = 0;
        this.#transition('closed', 'probes-succeeded');
      }
      return;
    }
    // Closed: count. Only a time window needs the clock.
    const window = this.#window;
    if (!failed) {
      this.#consecutive = 0;
      if (window !== undefined) window.record(false, window instanceof TimeWindow ? this.#env.clock.now() : 0);
      return;
    }
    this.#consecutive++;
    if (window !== undefined) window.record(true, window instanceof TimeWindow ? this.#env.clock.now() : 0);
    if (this.#consecutive >= this.#params.consecutiveFailures) this.#open('consecutive-failures');
    else if (window !== undefined) {
      const rate = this.#params.failureRate as NonNullable<CircuitBreakerParams['failureRate']>;
      if (window.total >= rate.minimumVolume && window.failures >= rate.threshold * window.total) this.#open('failure-rate');
    }
  }

  /** Opens the circuit by hand until {@link CircuitBreakerService.reset}. */
  isolate(): void {
    if (this.#state !== 'isolated') this.#transition('isolated', 'isolated');
  }

  /** Closes the circuit by hand and forgets every failure. */
  reset(): void {
    this.#failedProbes = 0;
    this.#transition('closed', 'reset');
  }

  /** The state and the failure-rate window, to persist and {@link CircuitBreakerService.restore} later. */
  export(): CircuitSnapshot {
    const clock = this.#env.clock;
    const now = clock.now();
    return {
      state: this.#state,
      failedProbes: this.#failedProbes,
      consecutiveFailures: this.#consecutive,
      retryInMs: this.#state === 'open' ? Math.max(0, this.#retryAt - now) : 0,
      exportedAt: clock.wallTime(),
      ...(this.#window === undefined ? {} : { window: this.#window.export(now) }),
    };
  }

  /**
   * Takes up an exported state: an open circuit stays open for what was left of its backoff
   * (less the wall-clock time since the export); a half-open one waits for its probe again. A
   * closed circuit takes up the window's outcomes too (a time window aged by the time since the
   * export); a window of another shape than this breaker's starts afresh.
   */
  restore(snapshot: CircuitSnapshot): void {
    if (snapshot === null || typeof snapshot !== 'object' || !STATES.includes(snapshot.state)) {
      throw new InvalidOptionError('snapshot.state', `must be one of ${STATES.join(', ')} (got ${JSON.stringify(snapshot?.state)})`);
    }
    const clock = this.#env.clock;
    this.#failedProbes = Math.max(0, Math.floor(Number(snapshot.failedProbes) || 0));
    const consecutive = Math.max(0, Math.floor(Number(snapshot.consecutiveFailures) || 0));
    const elapsed = Math.max(0, clock.wallTime() - (Number(snapshot.exportedAt) || 0));
    if (snapshot.state === 'closed') this.#transition('closed', 'restored');
    else if (snapshot.state === 'isolated') this.#transition('isolated', 'restored');
    else {
      this.#retryAt = clock.now() + Math.max(0, (Number(snapshot.retryInMs) || 0) - elapsed);
      this.#transition('open', 'restored');
    }
    this.#consecutive = consecutive;
    if (snapshot.state === 'closed' && snapshot.window !== undefined) this.#window?.restore(snapshot.window, clock.now(), elapsed);
  }

  ready(): boolean {
    if (this.#closed) return false;
    switch (this.#state) {
      case 'closed':
        return innerReady(this.#inner as Service<unknown, unknown>);
      case 'open':
        return this.#env.clock.now() >= this.#retryAt && innerReady(this.#inner as Service<unknown, unknown>);
      case 'half-open':
        return this.#probesInFlight < this.#params.probes && innerReady(this.#inner as Service<unknown, unknown>);
      default:
        return false;
    }
  }

  describe(): LayerDescription[] {
    const p = this.#params;
    const window = this.#window;
    if (window instanceof TimeWindow) window.expire(this.#env.clock.now());
    return describeChain(
      {
        layer: 'circuit-breaker',
        params: {
          consecutiveFailures: p.consecutiveFailures === Number.POSITIVE_INFINITY ? 'off' : p.consecutiveFailures,
          failureRate: p.failureRate
            ? { threshold: p.failureRate.threshold, minimumVolume: p.failureRate.minimumVolume, window: p.failureRate.describe }
            : 'off',
          backoff: { min: formatDuration(p.backoff.minMs), max: formatDuration(p.backoff.maxMs), jitter: p.backoff.jitter },
          probes: p.probes,
        },
        state: {
          state: this.#state,
          consecutiveFailures: this.#consecutive,
          failedProbes: this.#failedProbes,
          ...(window ? { windowCalls: window.total, windowFailures: window.failures } : {}),
          ...(this.#state === 'open' ? { retryInMs: Math.max(0, this.#retryAt - this.#env.clock.now()) } : {}),
        },
      },
      this.#inner as Service<unknown, unknown>,
    );
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#inner.close?.();
  }

  #open(reason: CircuitReason): void {
    this.#retryAt = this.#env.clock.now() + probeDelay(this.#params.backoff, this.#failedProbes, this.#env.random);
    this.#transition('open', reason);
  }

  #transition(to: CircuitState, reason: CircuitReason): void {
    const from = this.#state;
    this.#state = to;
    this.#generation++;
    this.#probesInFlight = 0;
    this.#probeSuccesses = 0;
    if (to === 'closed') {
      this.#consecutive = 0;
      this.#window?.clear();
    }
    const events = this.#env.events;
    if (events.wants('circuit-state')) {
      events.emit('circuit-state', {
        service: this.#env.service,
        from,
        to,
        reason,
        retryAt: to === 'open' ? this.#retryAt : to === 'isolated' ? Number.POSITIVE_INFINITY : undefined,
      });
    }
  }

  /** New live parameters: a different window shape starts a fresh window. */
  #adopt(params: CircuitBreakerParams): void {
    const before = this.#params.failureRate?.window;
    const after = params.failureRate?.window;
    if (before?.kind !== after?.kind || before?.size !== after?.size || before?.bucketMs !== after?.bucketMs) {
      this.#window = after && makeWindow(after);
    }
    this.#params = params;
  }
}
