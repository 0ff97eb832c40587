import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { isNeverAborted } from '../../../src/core/context.js';
import { TimeoutError } from '../../../src/core/errors.js';
import { meshGrpc, meshGrpcClient, NO_GRPC_RETRIES } from '../../../src/integrations/grpc/index.js';
import type { RetryOptions } from '../../../src/layers/retry/index.js';
import '../../support/leaks.js';

const definition = protoLoader.loadSync(new URL('../../../examples/proto/greeter.proto', import.meta.url).pathname);
const Greeter = (grpc.loadPackageDefinition(definition).demo as grpc.GrpcObject).Greeter as grpc.ServiceClientConstructor;
const fast: RetryOptions = { attempts: 2, backoff: { base: '1ms', jitter: 'none' }, budget: false };

type Script = (call: grpc.ServerUnaryCall<any, any> | grpc.ServerWritableStream<any, any>, n: number) => unknown;

/** A Greeter server whose n-th call (1-based) is answered by `script`. */
async function startServer(name: string, hello: Script, count?: Script) {
  const server = new grpc.Server();
  const seen: { metadata: grpc.Metadata; deadline: grpc.Deadline; cancelled: boolean }[] = [];
  const record = (call: grpc.ServerUnaryCall<any, any> | grpc.ServerWritableStream<any, any>) => {
    const entry = { metadata: call.metadata, deadline: call.getDeadline(), cancelled: false };
    call.on('cancelled', () => (entry.cancelled = true));
    seen.push(entry);
    return seen.length;
  };
  server.addService(Greeter.service, {
    sayHello: (call: grpc.ServerUnaryCall<any, any>, callback: grpc.sendUnaryData<any>) => {
      const n = record(call);
      Promise.resolve(hello(call, n)).then(
        (reply) => reply !== undefined && callback(null, { message: String(reply), servedBy: name }),
        (error) => callback(error),
      );
    },
    count: (call: grpc.ServerWritableStream<any, any>) => {
      const n = record(call);
      count?.(call, n);
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  return { address: `127.0.0.1:${port}`, seen, close: () => server.forceShutdown() };
}

const fail = (code: grpc.status) => Promise.reject(Object.assign(new Error(grpc.status[code]), { code }));
const until = async (check: () => boolean) => {
  while (!check()) await new Promise((r) => setTimeout(r, 5));
};
/** `promise`, or a rejection once `ms` have passed: a failing test ends instead of hanging. */
const within = <T>(promise: Promise<T>, ms: number) => {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still pending after ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
};

test('unary: UNAVAILABLE is retried, the deadline and metadata reach the server', async () => {
  const s = await startServer('a', (call, n) => (n < 3 ? fail(grpc.status.UNAVAILABLE) : `hello ${call.request.name}`));
  const client = meshGrpcClient(Greeter, { endpoints: [s.address], retry: fast, timeout: '2s', registry: false });
  const metadata = new grpc.Metadata();
  metadata.set('x-tenant', 'acme');
  const reply = await client.unary<{ message: string }>('SayHello', { name: 'ada' }, { metadata });
  assert.equal(reply.message, 'hello ada');
  assert.equal(s.seen.length, 3);
  for (const call of s.seen) {
    assert.deepEqual(call.metadata.get('x-tenant'), ['acme']);
    const left = Number(call.deadline instanceof Date ? call.deadline.getTime() : call.deadline) - Date.now();
    assert.ok(left > 1000 && left <= 2000, `deadline ${left} ms away`);
  }
  await client.close();
  s.close();
});

test('unary: INVALID_ARGUMENT is not retried; a status error reaches the caller', async () => {
  const s = await startServer('a', () => fail(grpc.status.INVALID_ARGUMENT));
  const client = meshGrpcClient(Greeter, { endpoints: [s.address], retry: fast, registry: false });
  await assert.rejects(client.unary('sayHello', { name: 'x' }), { code: grpc.status.INVALID_ARGUMENT });
  assert.equal(s.seen.length, 1);
  await assert.rejects(client.unary('count', {}), /not a unary method/);
  // A NaN timeout would be no deadline at all: refused, naming the option.
  await assert.rejects(client.unary('sayHello', { name: 'x' }, { timeoutMs: Number.NaN }), /timeoutMs: must be a number of milliseconds/);
  // A negative time left is a deadline already passed: a timeout, not a programming error.
  await assert.rejects(client.unary('sayHello', { name: 'x' }, { timeoutMs: -5 }), { name: 'TimeoutError' });
  assert.equal(s.seen.length, 1, 'refused before any attempt');
  await client.close();
  s.close();
});

test('cancel through the signal and through the timeout: the server sees the call cancelled', async () => {
  const s = await startServer('a', () => undefined);
  const client = meshGrpcClient(Greeter, { endpoints: [s.address], retry: fast, registry: false });
  const controller = new AbortController();
  const pending = client.unary('sayHello', { name: 'x' }, { signal: controller.signal });
  await until(() => s.seen.length === 1);
  controller.abort();
  await assert.rejects(pending);
  await until(() => s.seen[0]?.cancelled === true);
  const timed = meshGrpcClient(Greeter, { endpoints: [s.address], retry: false, timeout: '100ms', registry: false });
  await assert.rejects(timed.unary('sayHello', { name: 'y' }), TimeoutError);
  await until(() => s.seen[1]?.cancelled === true);
  await client.close();
  await timed.close();
  s.close();
});

test('server streaming is retried before the first message only', async () => {
  const s = await startServer(
    'a',
    () => 'unused',
    (call, n) => {
      const stream = call as grpc.ServerWritableStream<any, any>;
      if (n === 1) return void stream.emit('error', { code: grpc.status.UNAVAILABLE, details: 'unavailable' });
      stream.write({ n: 1 });
      if (n === 3) return void stream.emit('error', { code: grpc.status.UNAVAILABLE, details: 'unavailable' });
      stream.write({ n: 2 });
      stream.end();
    },
  );
  const client = meshGrpcClient(Greeter, { endpoints: [s.address], retry: fast, registry: false });
  const got: number[] = [];
  for await (const m of client.serverStream<{ n: number }>('Count', { upto: 2 })) got.push(m.n);
  assert.deepEqual(got, [1, 2]);
  assert.equal(s.seen.length, 2);
  const partial: number[] = [];
  await assert.rejects(
    async () => {
      for await (const m of client.serverStream<{ n: number }>('count', { upto: 2 })) partial.push(m.n);
    },
    { code: grpc.status.UNAVAILABLE },
  );
  assert.deepEqual(partial, [1]);
  assert.equal(s.seen.length, 3, 'a failure after the first message is not retried');
  await client.close();
  s.close();
});

/** Runs `body`, then asserts no uncaught exception happened meanwhile (an `'error'` event nobody listened to). */
async function withoutUncaught(body: () => Promise<void>) {
  const uncaught: unknown[] = [];
  const onUncaught = (error: unknown) => uncaught.push(error);
  process.on('uncaughtException', onUncaught);
  try {
    await body();
    await new Promise((r) => setTimeout(r, 50)); // room for a late status
  } finally {
    process.off('uncaughtException', onUncaught);
  }
  assert.deepEqual(uncaught.map(String), [], 'no uncaught exception');
}

test('server streaming: a status after the first message rejects the loop, never an uncaught exception', { timeout: 10_000 }, () =>
  withoutUncaught(async () => {
    const s = await startServer(
      'a',
      () => 'unused',
      (call) => {
        const stream = call as grpc.ServerWritableStream<any, any>;
        stream.write({ n: 1 });
        stream.emit('error', { code: grpc.status.INTERNAL, details: 'broken' });
      },
    );
    const client = meshGrpcClient(Greeter, { endpoints: [s.address], retry: fast, registry: false });
    const got: number[] = [];
    await assert.rejects(
      async () => {
        for await (const m of client.serverStream<{ n: number }>('count', { upto: 2 })) {
          got.push(m.n);
          // The consumer is busy with the first message while the status arrives.
          await new Promise((r) => setTimeout(r, 100));
        }
      },
      { code: grpc.status.INTERNAL },
    );
    assert.deepEqual(got, [1]);
    assert.equal(s.seen.length, 1);
    await client.close();
    s.close();
  }),
);

test(
  'server streaming: a consumer that stops after the first message cancels the call, never an uncaught exception',
  { timeout: 10_000 },
  () =>
    withoutUncaught(async () => {
      const s = await startServer(
        'a',
        () => 'unused',
        (call) => void (call as grpc.ServerWritableStream<any, any>).write({ n: 1 }), // then holds the call open
      );
      const client = meshGrpcClient(Greeter, { endpoints: [s.address], retry: fast, registry: false });
      for await (const m of client.serverStream<{ n: number }>('count', {})) {
        assert.equal(m.n, 1);
        break;
      }
      await within(
        until(() => s.seen[0]?.cancelled === true),
        2000,
      );
      await client.close();
      s.close();
    }),
);

test('server streaming: the signal cancels the call after the first message too', { timeout: 10_000 }, async () => {
  // Writes `upto` messages (at least one), then holds the call open.
  const s = await startServer(
    'a',
    () => 'unused',
    (call) => {
      for (let n = 1; n <= Math.max(1, call.request.upto); n++) (call as grpc.ServerWritableStream<any, any>).write({ n });
    },
  );
  const client = meshGrpcClient(Greeter, { endpoints: [s.address], retry: fast, registry: false });
  try {
    // Aborted while the consumer handles the first message, while it waits for the next, and
    // while it handles the first with more already received: none of them is yielded.
    const cases = [
      { abortWhile: 'handling', upto: 1 },
      { abortWhile: 'waiting', upto: 1 },
      { abortWhile: 'handling with more buffered', upto: 3 },
    ];
    for (const { abortWhile, upto } of cases) {
      const controller = new AbortController();
      const got: number[] = [];
      const loop = async () => {
        for await (const m of client.serverStream<{ n: number }>('count', { upto }, { signal: controller.signal })) {
          got.push(m.n);
          if (abortWhile === 'waiting') setTimeout(() => controller.abort(), 50);
          else {
            await new Promise((r) => setTimeout(r, 50));
            controller.abort();
          }
        }
      };
      await assert.rejects(within(loop(), 2000), { code: grpc.status.CANCELLED }, `aborted while ${abortWhile}`);
      assert.deepEqual(got, [1], `aborted while ${abortWhile}`);
      await within(
        until(() => s.seen.at(-1)?.cancelled === true),
        2000,
      );
    }
    assert.equal(s.seen.length, cases.length);
  } finally {
    await client.close();
    s.close();
  }
});

test('a call without a signal never listens on the shared never-firing signal, also once it has rotated', async () => {
  const s = await startServer('a', () => 'hi');
  const client = meshGrpcClient(Greeter, { endpoints: [s.address], retry: false, registry: false });
  const add = EventTarget.prototype.addEventListener;
  let listened = 0;
  EventTarget.prototype.addEventListener = function (this: EventTarget, ...args: Parameters<EventTarget['addEventListener']>) {
    if (this instanceof AbortSignal && isNeverAborted(this)) listened++;
    return add.apply(this, args);
  };
  try {
    // More calls than one never-firing signal is handed out for (256): it is replaced meanwhile.
    for (let i = 0; i < 600; i++) await client.unary('sayHello', { name: 'x' });
  } finally {
    EventTarget.prototype.addEventListener = add;
  }
  assert.equal(listened, 0);
  await client.close();
  s.close();
});

test('balanced over endpoints: one channel each, the slow one avoided', async () => {
  const slow = await startServer('slow', () => new Promise((r) => setTimeout(() => r('hi'), 250)));
  const quick = await startServer('quick', () => 'hi');
  const client = meshGrpcClient(Greeter, { endpoints: [slow.address, quick.address], retry: false, registry: false });
  const servedBy: Record<string, number> = {};
  for (let i = 0; i < 40; i++) {
    const reply = await client.unary<{ servedBy: string }>('sayHello', { name: 'x' });
    servedBy[reply.servedBy] = (servedBy[reply.servedBy] ?? 0) + 1;
  }
  assert.ok((servedBy.quick ?? 0) >= 30, JSON.stringify(servedBy));
  await client.close();
  slow.close();
  quick.close();
});

test('meshGrpc wraps a generated client you already have', async () => {
  const s = await startServer('a', (call, n) => (n === 1 ? fail(grpc.status.RESOURCE_EXHAUSTED) : `hi ${call.request.name}`));
  const existing = new Greeter(s.address, grpc.credentials.createInsecure(), NO_GRPC_RETRIES);
  const client = meshGrpc(existing, { retry: fast, registry: false });
  assert.equal((await client.unary<{ message: string }>('sayHello', { name: 'bo' })).message, 'hi bo');
  assert.equal(s.seen.length, 2);
  assert.throws(() => meshGrpc({} as grpc.Client), /meshGrpc\.client/);
  await client.close();
  s.close();
});

test('GRPC_STATUS_NAMES is one list, as the protocol spells it, from the package root and sidecarless/grpc', async () => {
  const root = await import('../../../src/index.js');
  const fromGrpc = await import('../../../src/integrations/grpc/index.js');
  assert.equal(fromGrpc.GRPC_STATUS_NAMES, root.GRPC_STATUS_NAMES);
  assert.equal(fromGrpc.GRPC_STATUS_NAMES[grpc.status.UNAVAILABLE], 'UNAVAILABLE');
  assert.deepEqual(
    fromGrpc.GRPC_STATUS_NAMES,
    Object.keys(grpc.status).filter((key) => Number.isNaN(Number(key))),
    "the names by code are grpc-js's",
  );
  // The labels a classification carries are the same names in lowercase, by code.
  assert.equal(fromGrpc.GRPC_STATUS_LABELS[grpc.status.UNAVAILABLE], 'unavailable');
  for (let code = 1; code < fromGrpc.GRPC_STATUS_LABELS.length; code++) {
    assert.equal(fromGrpc.grpcClassifier.classifyError({ code }).status, fromGrpc.GRPC_STATUS_LABELS[code], `code ${code}`);
  }
  assert.equal(fromGrpc.GRPC_STATUS_LABELS[grpc.status.DEADLINE_EXCEEDED], 'timeout');
});
