/**
 * # tracing
 *
 * An OpenTelemetry span per logical call (`scope: 'call'`, the default; put it outermost) and,
 * with a second layer inside `retry` (`scope: 'attempt'`), a child span per attempt — so a trace
 * shows the call the caller made and every attempt the mesh made for it, linked parent to child.
 * Spans carry the semantic-convention attributes for HTTP clients or RPC (`protocol`), the
 * classification and status, the endpoint a balancer picked; retry decisions and hedges are
 * events on the call's span. {@link injectFetchInit}, {@link injectInto} and
 * {@link extractContext} carry the context across the wire through the API's propagator.
 *
 * Zero cost when nobody traces: each call asks the global tracer provider whether a real
 * provider sits behind it (one global read and a compare) and otherwise calls straight through,
 * with no span, no context switch and no extra promise.
 *
 * Prior art: linkerd2-proxy's and Envoy's tracing; OpenTelemetry's HTTP and gRPC
 * instrumentations; Tower's `trace` layer.
 *
 * @module
 */

import {
  context,
  ProxyTracerProvider,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  type TracerProvider,
  trace,
} from '@opentelemetry/api';
import { z } from 'zod';
import type { CallContext } from '../../core/context.js';
import { ServiceClosedError } from '../../core/errors.js';
import type { MeshEventName, Subscription } from '../../core/events.js';
import { describeChain, type Layer, type LayerDescription, type Service, type StackEnv } from '../../core/service.js';
import { parseOptions } from '../../core/validate.js';
import { endAttributes, startAttributes, type TracingProtocol } from './attributes.js';

export { endAttributes, startAttributes, type TracingProtocol } from './attributes.js';
export { extractContext, injectFetchInit, injectInto, type SettableCarrier, traceHeaders } from './propagation.js';

/** Options of the tracing layer. */
export interface TracingOptions {
  /** `call` (default: one span per logical call) or `attempt` (inside retry: one per attempt). */
  scope?: 'call' | 'attempt';
  /** Semantic conventions to follow. Default `generic`. */
  protocol?: TracingProtocol;
  /** A tracer to use always. Default: the global provider's, when one is registered. */
  tracer?: Tracer;
  /** Span kind. Default `CLIENT` (the mesh sits on the calling side). */
  kind?: SpanKind;
}

const schema = z.strictObject({
  scope: z.enum(['call', 'attempt'], { error: 'must be "call" or "attempt"' }).default('call'),
  protocol: z.enum(['http', 'rpc', 'generic'], { error: 'must be "http", "rpc" or "generic"' }).default('generic'),
  tracer: z.custom<Tracer>((v) => typeof (v as Tracer)?.startSpan === 'function', { error: 'must be an OpenTelemetry Tracer' }).optional(),
  kind: z.enum(SpanKind, { error: 'must be a SpanKind' }).default(SpanKind.CLIENT),
});

/** The provider behind an unconfigured global: a fresh proxy's delegate is the shared no-op one. */
const NOOP_PROVIDER = new ProxyTracerProvider().getDelegate();
/** Layer events recorded on the call's span. */
const SPAN_EVENTS: readonly string[] = ['retry', 'retry-skipped', 'hedge', 'hedge-skipped'];

/** The service of the tracing layer; see the module doc. */
export class TracingService<Req, Res> implements Service<Req, Res> {
  readonly #inner: Service<Req, Res>;
  readonly #env: StackEnv;
  readonly #attempt: boolean;
  readonly #protocol: TracingProtocol;
  readonly #kind: SpanKind;
  readonly #fixed: Tracer | undefined;
  readonly #subscriptions: Subscription[] = [];
  #delegate: TracerProvider | undefined = undefined;
  #tracer: Tracer | undefined = undefined;
  #closed = false;

  constructor(inner: Service<Req, Res>, env: StackEnv, options: z.output<typeof schema>) {
    this.#inner = inner;
    this.#env = env;
    this.#attempt = options.scope === 'attempt';
    this.#protocol = options.protocol;
    this.#kind = options.kind;
    this.#fixed = options.tracer;
    if (!this.#attempt) {
      for (const name of SPAN_EVENTS) {
        // Layers publish from inside the call, where the call's span is the active one.
        this.#subscriptions.push(
          env.events.on(name as MeshEventName, (event: object) => {
            trace.getActiveSpan()?.addEvent(`sidecarless.${name}`, eventAttributes(event));
          }),
        );
      }
    }
  }

  call(req: Req, ctx: CallContext): Promise<Res> {
    if (this.#closed) return Promise.reject(new ServiceClosedError({ layer: 'tracing' }));
    const tracer = this.#fixed ?? this.#globalTracer();
    if (tracer === undefined) return this.#inner.call(req, ctx);
    return this.#traced(tracer, req, ctx);
  }

  /** The global tracer, or `undefined` when no provider is registered; re-resolved only when the provider changes. */
  #globalTracer(): Tracer | undefined {
    const provider = trace.getTracerProvider();
    const delegate = provider instanceof ProxyTracerProvider ? provider.getDelegate() : provider;
    if (delegate !== this.#delegate) {
      this.#delegate = delegate;
      this.#tracer = delegate === NOOP_PROVIDER ? undefined : delegate.getTracer('sidecarless');
    }
    return this.#tracer;
  }

  async #traced(tracer: Tracer, req: Req, ctx: CallContext): Promise<Res> {
    const parent = context.active();
    const start = startAttributes(this.#protocol, this.#env.service, req, ctx, this.#attempt);
    const span = tracer.startSpan(start.name, { kind: this.#kind, attributes: start.attributes }, parent);
    let result: Res;
    try {
      result = await context.with(trace.setSpan(parent, span), this.#callInner, this, req, ctx);
    } catch (error) {
      this.#finish(span, true, error, ctx);
      throw error;
    }
    this.#finish(span, false, result, ctx);
    return result;
  }

  /** Ends the span; a throwing classifier or exporter must not change the call's outcome. */
  #finish(span: Span, threw: boolean, outcome: unknown, ctx: CallContext): void {
    try {
      const classifier = this.#env.classifier;
      if (threw) this.#end(span, undefined, outcome, classifier.classifyError(outcome), ctx);
      else this.#end(span, outcome as Res, undefined, classifier.classifyResult(outcome), ctx);
    } catch (error) {
      process.emitWarning(`sidecarless: ending a span failed: ${String(error)}`, 'SidecarlessWarning');
      span.end();
    }
  }

  #callInner(req: Req, ctx: CallContext): Promise<Res> {
    return this.#inner.call(req, ctx);
  }

  #end(span: Span, result: unknown, error: unknown, verdict: ReturnType<StackEnv['classifier']['classifyError']>, ctx: CallContext): void {
    span.setAttributes(endAttributes(this.#protocol, result, error, verdict, ctx));
    if (!this.#attempt && ctx.attempt > 1) span.setAttribute('sidecarless.attempts', ctx.attempt);
    if (error !== undefined && error instanceof Error) span.recordException(error);
    if (verdict.kind === 'failure') span.setStatus({ code: SpanStatusCode.ERROR, message: verdict.status });
    span.end();
  }

  ready(): boolean {
    return !this.#closed && (this.#inner.ready?.() ?? true);
  }

  describe(): LayerDescription[] {
    return describeChain(
      {
        layer: 'tracing',
        params: { scope: this.#attempt ? 'attempt' : 'call', protocol: this.#protocol },
        state: { active: (this.#fixed ?? this.#globalTracer()) !== undefined },
      },
      this.#inner as Service<unknown, unknown>,
    );
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const subscription of this.#subscriptions) subscription.dispose();
    await this.#inner.close?.();
  }
}

/** Scalar fields of an event, as span event attributes (errors and objects left out). */
function eventAttributes(event: object): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const [key, value] of Object.entries(event)) {
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') out[key] = value;
  }
  return out;
}

/** The tracing layer: `.layer(tracing({ protocol: 'http' }))`, or the builder's `.tracing()`. */
export function tracing<Req, Res>(options: TracingOptions = {}): Layer<Req, Res> {
  const parsed = parseOptions(schema, options, 'tracing');
  return {
    name: 'tracing',
    wrap: (inner: Service<Req, Res>, env: StackEnv) => new TracingService(inner, env, parsed),
  };
}
