import type { CallContext } from '../../core/context.js';
import { formatDuration } from '../../core/duration.js';
import { CancelledError, OverloadedError, ServiceClosedError, TimeoutError } from '../../core/errors.js';
import { type CallHooks, callThroughHooks } from '../../core/hooks.js';
import type { Param } from '../../core/params.js';
import { describeChain, type LayerDescription, type Service, type StackEnv } from '../../core/service.js';
import { innerReady } from '../load-shed/admission.js';
import type { ConcurrencyLimitParams } from './options.js';
import { type WaitEnd, Waiter, WaiterQueue, type WaitOwner } from './waiter.js';

const LAYER = { layer: 'concurrency-limit' } as const;

/** The service of the concurrency-limit layer; see the module doc in `index.ts`. */
export class ConcurrencyLimitService<Req, Res> implements Service<Req, Res>, CallHooks, WaitOwner {
  readonly #inner: Service<Req, Res>;
  readonly #param: Param<ConcurrencyLimitParams>;
  readonly #env: StackEnv;
  #params: ConcurrencyLimitParams;
  #inflight = 0;
  #byPartition: number[];
  #queues: WaiterQueue[];
  #queued = 0;
  #closed = false;

  constructor(inner: Service<Req, Res>, param: Param<ConcurrencyLimitParams>, env: StackEnv) {
    this.#inner = inner;
    this.#param = param;
    this.#env = env;
    this.#params = param.get();
    this.#byPartition = this.#params.names.map(() => 0);
    this.#queues = this.#params.names.map(() => new WaiterQueue());
  }

  /** Calls in flight. */
  get inflight(): number {
    return this.#inflight;
  }

  /** Calls waiting for a permit. */
  get queued(): number {
    return this.#queued;
  }

  call(req: Req, ctx: CallContext): Promise<Res> {
    return callThroughHooks(this, this.#inner, req, ctx);
  }

  /** @internal admission: the partition of a granted permit, a wait for one, or a refusal. */
  admit(ctx: CallContext): number | Promise<number> | Error {
    if (this.#closed) return new ServiceClosedError(LAYER);
    let params = this.#param.get();
    if (params !== this.#params) params = this.#adopt(params);
    const partition = params.priority === undefined ? 0 : this.#partitionOf(params, ctx);
    if (this.#inflight < params.max) {
      this.#inflight++;
      (this.#byPartition[partition] as number)++;
      return partition;
    }
    const queue = this.#queues[partition] as WaiterQueue;
    if (queue.size >= (params.queueCaps[partition] as number)) {
      return new OverloadedError(params.queue === 0 ? 'concurrency limit reached' : 'concurrency limit queue full', LAYER);
    }
    if (ctx.cancelled) return asError(ctx.cancelReason);
    const now = this.#env.clock.now();
    const untilDeadline = ctx.deadline - now;
    if (untilDeadline <= 0) return new TimeoutError(0, LAYER);
    const byDeadline = untilDeadline <= params.maxWaitMs;
    const waiter = new Waiter(this, ctx, this.#env.clock, byDeadline ? untilDeadline : params.maxWaitMs);
    waiter.partition = partition;
    waiter.byDeadline = byDeadline;
    queue.push(waiter);
    this.#queued++;
    // The permit is counted for this call when it is granted.
    return waiter.promise.then(() => partition);
  }

  /** @internal an admitted call settled: its permit goes to the next waiter. */
  settled(partition: number): void {
    this.#inflight--;
    const held = this.#byPartition[partition];
    // After a live change of partitions a call may release into a slot that no longer counts it.
    if (held !== undefined && held > 0) this.#byPartition[partition] = held - 1;
    this.#grant();
  }

  /** @internal a waiter's timer fired or its call was cancelled. */
  waitEnded(waiter: Waiter, why: WaitEnd): void {
    this.#dequeue(waiter);
    const ctx = waiter.ctx;
    if (why === 'woken') {
      waiter.fail(ctx.cancelled ? ctx.cancelReason : new CancelledError(LAYER));
    } else if (waiter.byDeadline) {
      waiter.fail(new TimeoutError(Math.round(this.#env.clock.now() - waiter.enqueuedAt), LAYER));
    } else {
      waiter.fail(new OverloadedError(`queue wait exceeded ${formatDuration(this.#params.maxWaitMs)}`, LAYER));
    }
  }

  ready(): boolean {
    return !this.#closed && this.#inflight < this.#params.max && innerReady(this.#inner as Service<unknown, unknown>);
  }

  describe(): LayerDescription[] {
    const p = this.#param.get();
    const partitioned = p.priority !== undefined;
    return describeChain(
      {
        layer: 'concurrency-limit',
        params: {
          max: p.max,
          queue: p.queue,
          maxWait: formatDuration(p.maxWaitMs),
          ...(partitioned ? { partitions: Object.fromEntries(p.names.map((n, i) => [n, (p.shares[i] as number) / p.max])) } : {}),
        },
        state: {
          inflight: this.#inflight,
          queued: this.#queued,
          ...(partitioned
            ? {
                partitions: Object.fromEntries(
                  this.#params.names.map((n, i) => [n, { inflight: this.#byPartition[i], queued: this.#queues[i]?.size ?? 0 }]),
                ),
              }
            : {}),
        },
      },
      this.#inner as Service<unknown, unknown>,
    );
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const queue of this.#queues) for (const waiter of queue.drain()) waiter.fail(new ServiceClosedError(LAYER));
    this.#queued = 0;
    await this.#inner.close?.();
  }

  #partitionOf(params: ConcurrencyLimitParams, ctx: CallContext): number {
    const name = (params.priority as (ctx: CallContext) => string | undefined)(ctx);
    return (name === undefined ? undefined : params.index.get(name)) ?? params.names.length - 1;
  }

  #dequeue(waiter: Waiter): void {
    const queue = this.#queues[waiter.partition];
    if (queue === undefined) return;
    const before = queue.size;
    queue.remove(waiter);
    this.#queued -= before - queue.size;
  }

  /** Hands free permits to waiters: the partition furthest below its share first, FIFO within. */
  #grant(): void {
    const params = this.#params;
    while (this.#queued > 0 && this.#inflight < params.max) {
      let best = -1;
      let bestLoad = Number.POSITIVE_INFINITY;
      for (let i = 0; i < this.#queues.length; i++) {
        if ((this.#queues[i] as WaiterQueue).size === 0) continue;
        const load = (this.#byPartition[i] as number) / (params.shares[i] as number);
        if (load < bestLoad) {
          best = i;
          bestLoad = load;
        }
      }
      if (best < 0) return;
      const waiter = (this.#queues[best] as WaiterQueue).shift() as Waiter;
      this.#queued--;
      this.#inflight++;
      (this.#byPartition[best] as number)++;
      waiter.grant();
    }
  }

  /** New live parameters. A new partition layout fails the waiters of partitions that went away. */
  #adopt(params: ConcurrencyLimitParams): ConcurrencyLimitParams {
    const old = this.#params;
    if (params.names.join('\0') !== old.names.join('\0')) {
      for (const queue of this.#queues) for (const waiter of queue.drain()) waiter.fail(new OverloadedError('partitions changed', LAYER));
      this.#queued = 0;
      // Calls in flight still count against `max`; their partition shares start again from zero.
      this.#byPartition = params.names.map(() => 0);
      this.#queues = params.names.map(() => new WaiterQueue());
    }
    this.#params = params;
    this.#grant();
    return params;
  }
}

function asError(reason: unknown): Error {
  return reason instanceof Error ? reason : new CancelledError(LAYER);
}
