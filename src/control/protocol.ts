/**
 * The control stream's wire protocol, shared by the server and the HTTP source.
 *
 * - `GET /v1/stream?client=<id>&version=<applied>&session=<session>&seq=<seq>` with
 *   `Authorization: Bearer <token>` opens a long-lived response of newline-delimited JSON: a
 *   `hello` (the heartbeat interval and the server's version), then a full `snapshot` — unless
 *   the client already applied that version (resume) — then a `snapshot` on each change and a
 *   `heartbeat` every interval.
 * - `POST /v1/ack` with `{ client, version, applied, problems, session, seq }` acknowledges (ACK)
 *   or rejects (NACK) each version, as xDS clients do. An ACK clears the rejection recorded
 *   before it, as an xDS ACK clears the error detail.
 * - `GET /clients` lists each client's applied or rejected version.
 *
 * `session` and `seq` ({@link ReportStamp}) order what one client says of itself: a report the
 * client gave up on (no answer in time) and sent again may still reach the server after a newer
 * one, from a kernel's retransmission or a gateway that accepted it, and would otherwise
 * overwrite it. Both are optional, together, so a client older than them is still served; its
 * reports are recorded in the order they arrive.
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
  /** See {@link ReportStamp}. */
  readonly session?: string;
  /** See {@link ReportStamp}. */
  readonly seq?: number;
}

/**
 * Where a stream request or a report stands among everything one client instance sent: `session`
 * is drawn at random when the instance starts (1 to 64 of `A-Z a-z 0-9 _ -`), `seq` counts up from
 * 1 over its stream requests and reports together (a report sent again keeps its `seq`). The server
 * records a report, or the version a stream request names, only when its `seq` is above the
 * highest it recorded for that session; a different session (the client restarted) starts over.
 */
export interface ReportStamp {
  readonly session: string;
  readonly seq: number;
}

/** A client id, as the client gives it in the stream query and its reports. */
export const CLIENT_ID = /^[A-Za-z0-9_.:@-]{1,200}$/;
/** {@link CLIENT_ID} in words, for the errors that refuse one. */
export const CLIENT_ID_RULE = 'must be 1 to 200 letters, digits or "_.:@-"';
/** Characters a client id cannot hold, to make one from a host name. */
export const NOT_IN_CLIENT_ID = /[^A-Za-z0-9_.:@-]/g;
/** Problems one NACK carries at most: the document's validation stops there, the server keeps no more. */
export const MAX_REPORTED_PROBLEMS = 100;

const SESSION = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Reads a stamp: `undefined` when both parts are absent (a client older than the stamp), an
 * error message when either is malformed or given alone.
 */
export function readStamp(session: unknown, seq: unknown): ReportStamp | undefined | { error: string } {
  if (session === undefined && seq === undefined) return undefined;
  if (typeof session !== 'string' || !SESSION.test(session) || typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) {
    return { error: 'session must be 1 to 64 letters, digits, "_" or "-", with seq an integer from 0' };
  }
  return { session, seq };
}

/** The stamp of a stream request's query, read as {@link readStamp} reads a report's. */
export function readQueryStamp(query: URLSearchParams): ReturnType<typeof readStamp> {
  const seq = query.get('seq');
  return readStamp(query.get('session') ?? undefined, seq === null ? undefined : /^\d{1,15}$/.test(seq) ? Number(seq) : seq);
}

/**
 * Splits a byte stream into lines, refusing any line longer than `maxBytes` (a stream that
 * never sends a newline must not grow a buffer without bound). {@link StreamLines} with a throw
 * where that one reports the line and skips it.
 */
export class LineSplitter {
  readonly #lines: StreamLines;
  readonly #maxBytes: number;

  constructor(maxBytes: number) {
    this.#lines = new StreamLines(maxBytes);
    this.#maxBytes = maxBytes;
  }

  /** Feeds a chunk; returns the complete lines in it, or throws when a line is too long. */
  push(chunk: Buffer): string[] {
    return this.#lines.push(chunk).map((line) => {
      if ('overlong' in line) throw new Error(`stream line longer than ${this.#maxBytes} bytes`);
      return line.text;
    });
  }
}

/** One line of the stream: its text, or the first bytes of a line over the limit. */
export type StreamLine = { readonly text: string } | { readonly overlong: true; readonly head: string };

// Enough of a line to read its type and version from the head: `{"type":"snapshot","version":"..."`.
const HEAD_BYTES = 512;

/** Splits a byte stream into lines, holding at most `maxBytes` of any line. */
export class StreamLines {
  readonly #maxBytes: number;
  #parts: Buffer[] = [];
  #size = 0;
  #skipping = false;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /** Feeds a chunk; returns the lines it completes, and each line as it goes over the limit. */
  push(chunk: Buffer): StreamLine[] {
    const lines: StreamLine[] = [];
    let start = 0;
    while (start < chunk.length) {
      const newline = chunk.indexOf(10, start);
      const part = chunk.subarray(start, newline === -1 ? chunk.length : newline);
      if (!this.#skipping && this.#size + part.length > this.#maxBytes) {
        const head = Buffer.concat([...this.#parts, part], Math.min(HEAD_BYTES, this.#size + part.length));
        lines.push({ overlong: true, head: head.toString('utf8') });
        this.#parts = [];
        this.#size = 0;
        this.#skipping = true;
      } else if (!this.#skipping && part.length > 0) {
        this.#parts.push(part);
        this.#size += part.length;
      }
      if (newline === -1) break;
      if (!this.#skipping) lines.push({ text: Buffer.concat(this.#parts, this.#size).toString('utf8') });
      this.#parts = [];
      this.#size = 0;
      this.#skipping = false;
      start = newline + 1;
    }
    return lines;
  }
}
