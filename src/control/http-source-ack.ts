/**
 * The HTTP source's reports of its verdicts to the control server: an ACK, or a NACK with every
 * problem. A lost ACK of an applied version would be healed on the next connect (the stream
 * request names the version in force) but a NACK would not, and a stream may live for hours: so
 * a report is sent again with backoff until the server takes it. One report is in flight at a
 * time and only the newest waits (an older one still waiting is dropped), and each carries its
 * place in the client's order (`session` and `seq`, see `protocol.ts`): a copy the client gave up
 * on that reaches the server late is ignored there rather than overwriting a newer report.
 *
 * A report lives no longer than the stream whose snapshot it answers. While the stream is down,
 * retrying would only fail, or land on a restarted server that never sent what it rejects; and
 * the reconnect heals the server's view anyway: the stream request names the version in force,
 * and a version the client rejected is sent again and NACKed again.
 *
 * @module
 */

import type { ClientRequest } from 'node:http';
import type { Clock } from '../core/clock.js';
import { isRetryableHttpStatus, parseRetryAfter } from '../core/status.js';
import { type BackoffParams, backoffDelay } from '../layers/retry/backoff.js';
import type { AckReport } from './protocol.js';

/** How long a report may wait for its answer before it is taken as lost and sent again. */
const ACK_TIMEOUT_MS = 10_000;

/** A report the server did not take; sent again after `retryInMs`, unless absent. */
export interface AckFailed {
  type: 'ack-failed';
  version: string;
  reason: string;
  retryInMs?: number;
}

/** What an {@link AckReporter} works with. */
export interface AckReporterOptions {
  /** POSTs `body` to the server's ACK path. */
  send(body: string): ClientRequest;
  clock: Clock;
  backoff: BackoffParams;
  random: () => number;
  emit(event: AckFailed): void;
}

/** Sends reports one at a time, newest only, each retried until taken; see the module doc. */
export class AckReporter {
  readonly #options: AckReporterOptions;
  #waiting: AckReport | undefined;
  #request: ClientRequest | undefined;
  #deadline: unknown;
  #retryTimer: unknown;
  #failures = 0;
  #previousDelay = 0;
  #closed = false;

  constructor(options: AckReporterOptions) {
    this.#options = options;
  }

  /** Sends `report`, in place of any report still waiting. */
  report(report: AckReport): void {
    this.#waiting = report;
    if (this.#request !== undefined) return;
    // A new verdict is not held back by the wait for the old one's retry.
    this.#clearRetry();
    this.#sendWaiting();
  }

  /** The stream the reports answer is lost: the waiting report and the one in flight are given up. */
  drop(): void {
    this.#waiting = undefined;
    this.#clearRetry();
    this.#request?.destroy(new Error('stream lost'));
  }

  /** A new stream said hello: its reports' retries start again from the backoff's base. */
  resetBackoff(): void {
    this.#failures = 0;
    this.#previousDelay = 0;
  }

  /** Clears every timer; the caller destroys the request in flight. */
  close(): void {
    this.#closed = true;
    this.#clearRetry();
    if (this.#deadline !== undefined) this.#options.clock.clearTimer(this.#deadline);
    this.#deadline = this.#request = this.#waiting = undefined;
  }

  #clearRetry(): void {
    if (this.#retryTimer !== undefined) this.#options.clock.clearTimer(this.#retryTimer);
    this.#retryTimer = undefined;
  }

  #sendWaiting(): void {
    const report = this.#waiting;
    if (report === undefined || this.#closed) return;
    const { clock, emit } = this.#options;
    const req = this.#options.send(JSON.stringify(report));
    this.#request = req;
    this.#deadline = clock.setTimer(() => {
      this.#deadline = undefined;
      req.destroy(new Error(`no answer in ${ACK_TIMEOUT_MS}ms`));
    }, ACK_TIMEOUT_MS);
    let settled = false;
    const settle = (failure: string | undefined, retry = true, retryAfter?: number): void => {
      if (settled) return;
      settled = true;
      if (this.#deadline !== undefined) clock.clearTimer(this.#deadline);
      this.#deadline = this.#request = undefined;
      if (this.#closed) return;
      if (failure === undefined) this.resetBackoff();
      else if (retry && this.#waiting !== undefined) {
        const delay = this.#retryDelay(retryAfter);
        emit({ type: 'ack-failed', version: report.version, reason: failure, retryInMs: delay });
        this.#retryTimer = clock.setTimer(() => {
          this.#retryTimer = undefined;
          this.#sendWaiting();
        }, delay);
        return;
      } else emit({ type: 'ack-failed', version: report.version, reason: failure });
      // Taken, refused for good, or given up with its stream: a newer report waiting goes now.
      if (this.#waiting === report) this.#waiting = undefined;
      else this.#sendWaiting();
    };
    req.on('error', (error) => {
      req.destroy();
      settle(error.message);
    });
    req.on('response', (res) => {
      res.resume();
      const status = res.statusCode ?? 0;
      // Retried as the HTTP classifier would retry a call: a 4xx other than a timeout or a rate
      // limit says the report itself is wrong (sent again, it would be refused again), and so do
      // 501 and 505.
      if (status >= 200 && status < 300) return settle(undefined);
      const header = res.headers['retry-after'];
      const retryAfter = status === 429 || status === 503 ? parseRetryAfter(header, clock.wallTime()) : undefined;
      settle(`HTTP ${status}`, isRetryableHttpStatus(status), retryAfter);
    });
    req.on('close', () => settle('connection closed'));
  }

  /** The backoff's next delay, or the wait the server asked for, kept within the backoff's range. */
  #retryDelay(retryAfter: number | undefined): number {
    const { backoff, random } = this.#options;
    this.#failures++;
    const delay =
      retryAfter === undefined
        ? backoffDelay(backoff, this.#failures, this.#previousDelay, random)
        : Math.min(backoff.maxMs, Math.max(backoff.baseMs, retryAfter));
    this.#previousDelay = delay;
    return delay;
  }
}
