/**
 * The control stream's wire protocol, shared by the server and the HTTP source.
 *
 * - `GET /v1/stream?client=<id>&version=<applied>` with `Authorization: Bearer <token>` opens a
 *   long-lived response of newline-delimited JSON: a `hello` (the heartbeat interval and the
 *   server's version), then a full `snapshot` — unless the client already applied that version
 *   (resume) — then a `snapshot` on each change and a `heartbeat` every interval.
 * - `POST /v1/ack` with `{ client, version, applied, problems }` acknowledges (ACK) or rejects
 *   (NACK) each version, as xDS clients do.
 * - `GET /clients` lists each client's applied or rejected version.
 *
 * @module
 */

import type { OptionProblem } from '../core/errors.js';

/** Path of the stream. */
export const STREAM_PATH = '/v1/stream';
/** Path of ACK/NACK reports. */
export const ACK_PATH = '/v1/ack';
/** Path of the client list. */
export const CLIENTS_PATH = '/clients';

/** One line of the stream. */
export type StreamMessage =
  | { readonly type: 'hello'; readonly heartbeatMs: number; readonly version: string }
  | { readonly type: 'snapshot'; readonly version: string; readonly config: unknown }
  | { readonly type: 'heartbeat'; readonly version: string };

/** The body of an ACK or NACK. */
export interface AckReport {
  readonly client: string;
  readonly version: string;
  readonly applied: boolean;
  readonly problems?: readonly OptionProblem[];
}

/**
 * Splits a byte stream into lines, refusing any line longer than `maxBytes` (a stream that
 * never sends a newline must not grow a buffer without bound).
 */
export class LineSplitter {
  readonly #maxBytes: number;
  #parts: Buffer[] = [];
  #size = 0;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /** Feeds a chunk; returns the complete lines in it, or throws when a line is too long. */
  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let start = 0;
    let newline = chunk.indexOf(10, start);
    while (newline !== -1) {
      this.#add(chunk.subarray(start, newline));
      lines.push(Buffer.concat(this.#parts, this.#size).toString('utf8'));
      this.#parts = [];
      this.#size = 0;
      start = newline + 1;
      newline = chunk.indexOf(10, start);
    }
    if (start < chunk.length) this.#add(chunk.subarray(start));
    return lines;
  }

  #add(part: Buffer): void {
    this.#size += part.length;
    if (this.#size > this.#maxBytes) throw new Error(`stream line longer than ${this.#maxBytes} bytes`);
    this.#parts.push(part);
  }
}
