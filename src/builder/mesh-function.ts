import { CallContext } from '../core/context.js';
import type { EventHub } from '../core/events.js';
import type { StackRegistry } from '../core/registry.js';
import type { LayerDescription, Service, StackEnv } from '../core/service.js';

/** What a caller can hand the stack besides the arguments. */
export interface CallOptions {
  /** Cancels the call. */
  signal?: AbortSignal | undefined;
  /** An absolute deadline already in force, in clock milliseconds (e.g. from an incoming header). */
  deadline?: number | undefined;
  /** The route, for metrics and per-route config. */
  route?: string | undefined;
}

/** Options of {@link ServiceBuilder.service}. */
export interface ServiceOptions<A extends unknown[]> {
  /** Reads per-call options (signal, deadline, route) from the arguments, e.g. `init.signal`. */
  context?: (...args: A) => CallOptions | undefined;
}

/** The function a builder returns: the wrapped function's signature, plus the stack's handles. */
export type MeshFunction<A extends unknown[], R> = ((...args: A) => Promise<R>) & {
  /** The built stack, for composing it as a service. */
  readonly stack: Service<unknown[], R>;
  /** Typed listeners: `fn.events.on('retry', ...)`. */
  readonly events: EventHub;
  /** Name of the logical service. */
  readonly serviceName: string;
  /** Each layer with its live parameters and state, outermost first. */
  describe(): LayerDescription[];
  /** Whether a call now would be admitted without waiting. */
  ready(): boolean;
  /** Releases every layer's timers and listeners; later calls are refused. */
  close(): Promise<void>;
};

/**
 * Makes the function a builder returns over `stack`: the context goes in the function's last
 * declared parameter (`fn.length` counts those before any default or rest parameter), and a
 * caller passing more arguments pushes it further.
 */
export function meshFunction(
  fn: (...args: any[]) => unknown,
  passContext: boolean,
  options: ServiceOptions<any[]>,
  stack: Service<unknown[], unknown>,
  env: StackEnv,
  registry: StackRegistry | undefined,
): MeshFunction<any[], unknown> {
  const ownParams = passContext ? Math.max(0, fn.length - 1) : 0;
  const readContext = options.context;
  let wrapped: (...args: unknown[]) => Promise<unknown>;
  if (readContext === undefined) {
    wrapped = passContext ? contextPassingWrapper(stack, ownParams) : (...args: unknown[]) => stack.call(args, new CallContext());
  } else {
    wrapped = (...args: unknown[]) => {
      const given = readContext(...args);
      const ctx = new CallContext(given?.signal, given?.deadline);
      if (given?.route !== undefined) ctx.route = given.route;
      if (passContext) {
        if (args.length < ownParams) args.length = ownParams;
        args.push(ctx);
      }
      return settleWith(stack.call(args, ctx), ctx);
    };
  }
  const handle = new StackHandle(stack, env, registry);
  registry?.add(handle);
  Object.setPrototypeOf(wrapped, meshFunctionPrototype);
  (wrapped as unknown as Record<symbol, StackHandle>)[HANDLE] = handle;
  return wrapped as MeshFunction<any[], unknown>;
}

const HANDLE = Symbol('sidecarless.stack');

/** What a mesh function holds: one object, so a wrapped service stays small. */
class StackHandle {
  #closing: Promise<void> | undefined = undefined;
  readonly stack: Service<unknown[], unknown>;
  readonly env: StackEnv;
  readonly #registry: StackRegistry | undefined;

  constructor(stack: Service<unknown[], unknown>, env: StackEnv, registry: StackRegistry | undefined) {
    this.stack = stack;
    this.env = env;
    this.#registry = registry;
  }

  get name(): string {
    return this.env.service;
  }

  describe(): LayerDescription[] {
    return this.stack.describe?.() ?? [];
  }

  close(): Promise<void> {
    if (this.#closing === undefined) {
      this.#registry?.delete(this);
      this.#closing = Promise.resolve(this.stack.close?.()).then(() => this.env.deadlines.disarmIfIdle());
    }
    return this.#closing;
  }
}

function handleOf(fn: unknown): StackHandle {
  return (fn as Record<symbol, StackHandle>)[HANDLE] as StackHandle;
}

// Shared by every mesh function: the handles' methods live here rather than as closures on
// each function.
const meshFunctionPrototype: object = Object.create(Function.prototype, {
  stack: {
    get(this: unknown) {
      return handleOf(this).stack;
    },
  },
  events: {
    get(this: unknown) {
      return handleOf(this).env.events;
    },
  },
  serviceName: {
    get(this: unknown) {
      return handleOf(this).name;
    },
  },
  describe: {
    value(this: unknown) {
      return handleOf(this).describe();
    },
  },
  ready: {
    value(this: unknown) {
      return handleOf(this).stack.ready?.() ?? true;
    },
  },
  close: {
    value(this: unknown) {
      return handleOf(this).close();
    },
  },
});

/**
 * The outermost function of a stack over a function that takes the context. One- and
 * two-parameter functions (the common case) get a wrapper that builds the argument list as a
 * literal, cheaper than a rest array grown by a push.
 */
function contextPassingWrapper(stack: Service<unknown[], unknown>, ownParams: number): (...args: unknown[]) => Promise<unknown> {
  if (ownParams === 1) {
    return function meshCall1(this: unknown, a: unknown) {
      // biome-ignore lint/complexity/noArguments: arguments.length is free; a rest parameter allocates on every call
      if (arguments.length > 1) return callWithContext(stack, ownParams, Array.from(arguments));
      const ctx = new CallContext();
      return stack.call([a, ctx], ctx);
    };
  }
  if (ownParams === 2) {
    return function meshCall2(this: unknown, a: unknown, b: unknown) {
      // biome-ignore lint/complexity/noArguments: arguments.length is free; a rest parameter allocates on every call
      if (arguments.length > 2) return callWithContext(stack, ownParams, Array.from(arguments));
      const ctx = new CallContext();
      return stack.call([a, b, ctx], ctx);
    };
  }
  if (ownParams === 0) {
    // A function that takes only what callers pass (a balancer's endpoints are called with the
    // caller's arguments): the context follows however many arguments came.
    return function meshCallAny(this: unknown, a?: unknown, b?: unknown) {
      const ctx = new CallContext();
      // biome-ignore lint/complexity/noArguments: arguments.length is free; a rest parameter allocates on every call
      switch (arguments.length) {
        case 0:
          return stack.call([ctx], ctx);
        case 1:
          return stack.call([a, ctx], ctx);
        case 2:
          return stack.call([a, b, ctx], ctx);
        default: {
          // biome-ignore lint/complexity/noArguments: a rest parameter would allocate on every call, also for the cases above
          const args = Array.from(arguments);
          args.push(ctx);
          return stack.call(args, ctx);
        }
      }
    };
  }
  return (...args: unknown[]) => callWithContext(stack, ownParams, args);
}

function callWithContext(stack: Service<unknown[], unknown>, ownParams: number, args: unknown[]): Promise<unknown> {
  if (args.length < ownParams) args.length = ownParams;
  const ctx = new CallContext();
  args.push(ctx);
  return stack.call(args, ctx);
}

async function settleWith<R>(promise: Promise<R>, ctx: CallContext): Promise<R> {
  try {
    return await promise;
  } finally {
    ctx.dispose();
  }
}
