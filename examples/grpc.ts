/**
 * A meshed gRPC client (examples/proto/greeter.proto) over two loopback servers: one answers
 * UNAVAILABLE half of the time, so retries (ours; grpc-js's own are switched off) land on a
 * success; the remaining deadline reaches the servers as the call's deadline; metadata goes with
 * every attempt; a server stream is read through the mesh.
 *
 * Run: node --conditions=sidecarless-source --import tsx examples/grpc.ts
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { meshGrpcClient } from 'sidecarless/grpc';

const definition = protoLoader.loadSync(new URL('./proto/greeter.proto', import.meta.url).pathname);
const Greeter = (grpc.loadPackageDefinition(definition).demo as grpc.GrpcObject).Greeter as grpc.ServiceClientConstructor;

let served = 0;
let failed = 0;
async function startServer(name: string, flaky: boolean): Promise<{ address: string; server: grpc.Server }> {
  const server = new grpc.Server();
  let calls = 0;
  server.addService(Greeter.service, {
    sayHello: (call: grpc.ServerUnaryCall<{ name: string }, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      if (flaky && calls++ % 2 === 0) {
        failed++;
        return callback({ code: grpc.status.UNAVAILABLE, details: 'warming up' });
      }
      served++;
      const tenant = call.metadata.get('x-tenant')[0];
      const hasDeadline = Number.isFinite(Number(call.getDeadline()));
      callback(null, {
        message: `hello ${call.request.name} from ${name} (tenant ${tenant}, deadline ${hasDeadline ? 'set' : 'none'})`,
        servedBy: name,
      });
    },
    count: (call: grpc.ServerWritableStream<{ upto: number }, unknown>) => {
      for (let n = 1; n <= call.request.upto; n++) call.write({ n });
      call.end();
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  return { address: `127.0.0.1:${port}`, server };
}

const a = await startServer('a', true);
const b = await startServer('b', true);
const client = meshGrpcClient(Greeter, {
  name: 'greeter',
  endpoints: [a.address, b.address],
  timeout: '2s',
  retry: { attempts: 3, backoff: { base: '2ms' }, budget: false },
});
const metadata = new grpc.Metadata();
metadata.set('x-tenant', 'acme');
for (let i = 0; i < 4; i++) {
  const reply = await client.unary<{ message: string }>('SayHello', { name: `user${i}` }, { metadata });
  console.log(reply.message);
}
console.log(`served ${served}, UNAVAILABLE answers retried: ${failed}, caller saw 0 errors`);
const counted: number[] = [];
for await (const m of client.serverStream<{ n: number }>('Count', { upto: 3 })) counted.push(m.n);
console.log(`stream: ${counted.join(' ')}`);
await client.close();
a.server.forceShutdown();
b.server.forceShutdown();
console.log('done');
