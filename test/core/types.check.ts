import { type CallContext, ServiceBuilder } from '../../src/index.js';

const getUser = new ServiceBuilder()
  .timeout('250ms')
  .retry({ attempts: 3 })
  .service(async (id: string, ctx) => ({ id, attempt: ctx.attempt }));
const r: Promise<{ id: string; attempt: number }> = getUser('42');
const noArgs = new ServiceBuilder().service(async (ctx: CallContext) => ctx.attempt);
const r0: Promise<number> = noArgs();
const two = new ServiceBuilder().service(async (a: number, b: string, ctx: CallContext) => `${a}${b}${ctx.attempt}`);
const r2: Promise<string> = two(1, 'x');
const plain = new ServiceBuilder().wrap(async (a: number, b?: string) => `${a}${b}`);
const r3: Promise<string> = plain(1);
void [r, r0, r2, r3];
