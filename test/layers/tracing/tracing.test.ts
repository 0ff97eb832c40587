import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { context, propagation, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import {
  type CallContext,
  classification,
  extractContext,
  InvalidOptionError,
  injectFetchInit,
  injectInto,
  ServiceBuilder,
  tracing,
} from '../../../src/index.js';
import { VirtualClock } from '../../../src/testing/index.js';

const reset = () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });

test('without a registered tracer provider the layer calls straight through', async () => {
  let active: unknown = 'unset';
  const fn = new ServiceBuilder({ name: 'quiet', registry: false }).tracing().service(async (x: number) => {
    active = trace.getActiveSpan();
    return x * 2;
  });
  assert.equal(await fn(21), 42);
  assert.equal(active, undefined, 'no span was started');
  assert.equal(fn.describe()[0]?.state?.active, false);
  await fn.close();
});

test('bad options are refused with the field named', () => {
  assert.throws(
    () => tracing({ protocol: 'soap' as 'http' }),
    (e: unknown) => e instanceof InvalidOptionError && /tracing\.protocol/.test(e.message),
  );
  assert.throws(() => tracing({ tracer: {} as never }), /tracing\.tracer.*Tracer/);
});

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const contextManager = new AsyncLocalStorageContextManager();

let installed = false;
/** Registers the SDK globally — after the first test, which checks the unregistered case. */
function installSdk(): void {
  if (installed) return;
  installed = true;
  context.setGlobalContextManager(contextManager.enable());
  trace.setGlobalTracerProvider(provider);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
}

after(async () => {
  trace.disable();
  context.disable();
  propagation.disable();
  await provider.shutdown();
});

test('a span per call and a child span per attempt, HTTP attributes, retry events, propagation', async () => {
  installSdk();
  exporter.reset();
  const seen: { traceparent: string | null; attempt: number }[] = [];
  let calls = 0;
  const fakeFetch = async (url: string, init: { method: string; headers?: Record<string, string> } | undefined, ctx: CallContext) => {
    const sent = injectFetchInit(init);
    seen.push({
      traceparent: new Headers(sent.headers as ConstructorParameters<typeof Headers>[0]).get('traceparent'),
      attempt: ctx.attempt,
    });
    ctx.endpoint = '10.0.0.7:8080';
    if (++calls < 3) throw reset();
    return { status: 200, url };
  };
  const fetchUser = new ServiceBuilder({ name: 'users', registry: false })
    .tracing({ protocol: 'http' })
    .retry({ attempts: 3, backoff: { base: '1ms', jitter: 'none' } })
    .tracing({ protocol: 'http', scope: 'attempt' })
    .service(fakeFetch, { context: () => ({ route: '/users/{id}' }) });

  const parent = trace.getTracer('test').startSpan('request from the app');
  const response = await context.with(trace.setSpan(context.active(), parent), () =>
    fetchUser('http://users.internal:8080/users/42', { method: 'post' }),
  );
  parent.end();
  assert.equal(response.status, 200);

  const spans = exporter.getFinishedSpans();
  const callSpan = spans.find((s) => s.attributes['sidecarless.attempt'] === undefined && s.name === 'POST /users/{id}');
  assert.ok(callSpan, `call span among ${spans.map((s) => s.name).join(', ')}`);
  const attempts = spans.filter((s) => s.attributes['sidecarless.attempt'] !== undefined);
  assert.equal(attempts.length, 3);
  assert.equal(callSpan.parentSpanContext?.spanId, parent.spanContext().spanId, 'the call span is a child of the caller');
  assert.equal(callSpan.spanContext().traceId, parent.spanContext().traceId);
  for (const attempt of attempts)
    assert.equal(attempt.parentSpanContext?.spanId, callSpan.spanContext().spanId, 'attempts are children of the call');
  assert.deepEqual(
    attempts.map((s) => [s.attributes['sidecarless.attempt'], s.attributes['http.request.resend_count'], s.status.code]),
    [
      [1, undefined, SpanStatusCode.ERROR],
      [2, 1, SpanStatusCode.ERROR],
      [3, 2, SpanStatusCode.UNSET],
    ],
  );
  assert.equal(attempts[0]?.attributes['error.type'], 'ECONNRESET');
  assert.equal(callSpan.kind, SpanKind.CLIENT);
  assert.equal(callSpan.attributes['http.request.method'], 'POST');
  assert.equal(callSpan.attributes['url.full'], 'http://users.internal:8080/users/42');
  assert.equal(callSpan.attributes['server.address'], 'users.internal');
  assert.equal(callSpan.attributes['server.port'], 8080);
  assert.equal(callSpan.attributes['http.response.status_code'], 200);
  assert.equal(callSpan.attributes['sidecarless.endpoint'], '10.0.0.7:8080');
  assert.equal(callSpan.attributes['sidecarless.attempts'], 3);
  assert.deepEqual(
    callSpan.events.map((e) => [e.name, e.attributes?.attempt]),
    [
      ['sidecarless.retry', 1],
      ['sidecarless.retry', 2],
    ],
  );
  // Each attempt sent the traceparent of its own span.
  assert.deepEqual(
    seen.map((s) => s.traceparent?.split('-')[2]),
    attempts.map((s) => s.spanContext().spanId),
  );
  await fetchUser.close();
});

test('RPC attributes and gRPC metadata propagation both ways', async () => {
  installSdk();
  exporter.reset();
  const metadata = new Map<string, string>();
  const call = new ServiceBuilder({ name: 'greeter', registry: false }).tracing({ protocol: 'rpc' }).service(
    async (_req: { name?: string }) => {
      injectInto(metadata);
      const error = Object.assign(new Error('unavailable'), { code: 14 });
      throw error;
    },
    { context: () => ({ route: '/helloworld.Greeter/SayHello' }) },
  );
  await assert.rejects(call({}), /unavailable/);
  const [span] = exporter.getFinishedSpans();
  assert.ok(span);
  assert.equal(span.name, 'helloworld.Greeter/SayHello');
  assert.equal(span.attributes['rpc.system'], 'grpc');
  assert.equal(span.attributes['rpc.service'], 'helloworld.Greeter');
  assert.equal(span.attributes['rpc.method'], 'SayHello');
  assert.equal(span.attributes['rpc.grpc.status_code'], 14);
  assert.equal(span.status.code, SpanStatusCode.ERROR);
  assert.equal(
    span.events.some((e) => e.name === 'exception'),
    true,
  );
  // The server side reads the context back out of the metadata (gRPC's get returns a list).
  const grpcLike = {
    get: (key: string) => (metadata.has(key) ? [metadata.get(key) as string] : []),
    getMap: () => Object.fromEntries(metadata),
  };
  const remote = trace.getSpanContext(extractContext(grpcLike));
  assert.equal(remote?.spanId, span.spanContext().spanId);
  assert.equal(remote?.traceId, span.spanContext().traceId);
  await call.close();
});

test('a classifier that throws while a span ends cannot turn a success into a failure, and the span still ends', async () => {
  installSdk();
  exporter.reset();
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);
  process.on('warning', onWarning);
  const fn = new ServiceBuilder({
    name: 'throwing-classifier',
    registry: false,
    classifier: {
      classifyResult: () => {
        throw new Error('classifier bug');
      },
      classifyError: () => classification('failure', 'error'),
    },
  })
    .tracing()
    .service(async () => 'ok');
  assert.equal(await fn(), 'ok');
  await new Promise((resolve) => setImmediate(resolve));
  process.off('warning', onWarning);
  assert.equal(exporter.getFinishedSpans().length, 1, 'the span ended');
  assert.ok(warnings.some((w) => /classifier bug/.test(w)));
  await fn.close();
});

test('an attempt span of a hedge carries its hedge index beside the attempt number it hedges', async () => {
  installSdk();
  exporter.reset();
  const clock = new VirtualClock();
  let releasePrimary!: () => void;
  const primaryHeld = new Promise<void>((resolve) => {
    releasePrimary = resolve;
  });
  const fn = new ServiceBuilder({ name: 'hedged', registry: false, clock })
    .hedge({ delay: '10ms', budget: false })
    .tracing({ scope: 'attempt' })
    .service(async (ctx: CallContext) => {
      if (ctx.hedge === 0) await primaryHeld;
      return ctx.hedge;
    });
  const call = fn();
  await clock.advance(10);
  assert.equal(await call, 1, 'the hedge answered first');
  releasePrimary();
  await clock.runAll();
  const spans = exporter.getFinishedSpans().map((s) => [s.attributes['sidecarless.attempt'], s.attributes['sidecarless.hedge']]);
  assert.deepEqual(
    spans.sort((a, b) => Number(a[1] ?? 0) - Number(b[1] ?? 0)),
    [
      [1, undefined],
      [1, 1],
    ],
  );
  await fn.close();
});
