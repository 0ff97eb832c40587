import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { DeadlineEntry, DeadlineQueue } from '../../src/index.js';
import { VirtualClock } from '../../src/testing/index.js';

class Recorder extends DeadlineEntry {
  constructor(
    readonly name: string,
    readonly log: string[],
  ) {
    super();
  }
  expire(): void {
    this.log.push(this.name);
  }
}

test('entries of one list expire in deadline order behind a single timer', async () => {
  const clock = new VirtualClock();
  const list = new DeadlineQueue(clock).listFor(100);
  const log: string[] = [];
  const a = new Recorder('a', log);
  const b = new Recorder('b', log);
  const c = new Recorder('c', log);
  list.insert(a, 100, 0);
  await clock.advance(10);
  list.insert(b, 110, 10);
  list.insert(c, 105, 10); // out of order: sorted in from the tail
  assert.equal(clock.pendingTimers, 1, 'one clock timer for the whole list');
  await clock.advance(95);
  assert.deepEqual(log, ['a', 'c']);
  await clock.advance(5);
  assert.deepEqual(log, ['a', 'c', 'b']);
  assert.equal(list.size, 0);
  assert.equal(clock.pendingTimers, 0, 'an empty list does not re-arm');
});

test('removed entries never expire; an idle list can be disarmed', async () => {
  const clock = new VirtualClock();
  const queue = new DeadlineQueue(clock);
  const list = queue.listFor(50);
  const log: string[] = [];
  const a = new Recorder('a', log);
  list.insert(a, 50, 0);
  list.remove(a);
  list.remove(a); // twice is harmless
  assert.equal(queue.size, 0);
  assert.equal(clock.pendingTimers, 1, 'removal does not pay for clearTimeout');
  queue.disarmIfIdle();
  assert.equal(clock.pendingTimers, 0);
  await clock.advance(100);
  assert.deepEqual(log, []);
});

test('an entry earlier than the armed timer re-arms it', async () => {
  const clock = new VirtualClock();
  const list = new DeadlineQueue(clock).listFor(1);
  const log: string[] = [];
  list.insert(new Recorder('late', log), 100, 0);
  list.insert(new Recorder('early', log), 20, 0);
  await clock.advance(20);
  assert.deepEqual(log, ['early']);
  await clock.advance(80);
  assert.deepEqual(log, ['early', 'late']);
});

test('a deadline beyond the longest timer Node takes arms a timer of that length and is re-armed, not fired at 1 ms', async () => {
  const clock = new VirtualClock();
  const delays: number[] = [];
  const setTimer = clock.setTimer.bind(clock);
  clock.setTimer = (fn, delayMs) => {
    delays.push(delayMs);
    return setTimer(fn, delayMs);
  };
  const log: string[] = [];
  const list = new DeadlineQueue(clock).listFor(5e9);
  list.insert(new Recorder('far', log), 5e9, 0);
  assert.deepEqual(delays, [2_147_483_647]);
  await clock.advance(2_147_483_647);
  assert.deepEqual(log, [], 'not due yet');
  assert.deepEqual(delays, [2_147_483_647, 2_147_483_647]);
  await clock.advance(5e9);
  assert.deepEqual(log, ['far']);
});

/** Runs a module body as a child program on the system clock; resolves with its output and run time. */
function runChild(body: string): Promise<{ out: string; ms: number; code: number | null }> {
  const index = new URL('../../src/index.ts', import.meta.url).href;
  const source = `import { ServiceBuilder } from ${JSON.stringify(index)};\n${body}`;
  const started = performance.now();
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', source], { timeout: 20_000 }, (error, stdout) => {
      if (error?.killed) reject(error);
      else resolve({ out: stdout.trim(), ms: performance.now() - started, code: error ? (error.code as number) : 0 });
    });
  });
}

test('a deadline timer holds the program while a call waits on it, and not once the call is done', async () => {
  const timed = await runChild("const get = new ServiceBuilder().timeout('8s').service(async (x) => x + 1);\nconsole.log(await get(1));");
  assert.equal(timed.out, '2');
  assert.ok(timed.ms < 6000, `the program exited ${timed.ms.toFixed(0)} ms after start, not after the 8 s timeout`);
  const delayed = await runChild(
    "const get = new ServiceBuilder().faultInjection({ delay: { fixedDelay: '300ms' } }).service(async (x) => x + 1);\nconsole.log(await get(1));",
  );
  assert.equal(delayed.out, '2', 'the injected delay held the program until the call finished');
  assert.equal(delayed.code, 0);
});
