/**
 * The options the HTTP client integrations (`meshFetch`, `meshRequest`, `meshInterceptor`) have
 * in common, written once: their types with TSDoc, and the zod shapes their strict schemas
 * spread.
 *
 * @module
 */

import { z } from 'zod';
import { int } from '../../core/validate.js';
import { DEADLINE_HEADER } from '../shared/http.js';
import { type OutboundOptions, outboundShape } from '../shared/outbound.js';
import { DEFAULT_REPLAY_LIMIT } from './body.js';

/** Options of every HTTP client integration. */
export interface HttpOutboundOptions extends OutboundOptions {
  /** Retry POST, PATCH, ... too. Default false: only idempotent methods are retried. */
  retryNonIdempotent?: boolean;
  /** Bytes of request body kept for replay. Default 65,536 (64 KiB). */
  replayBuffer?: number;
  /** Header carrying the remaining deadline in ms; `false` to send none. Default `x-sidecarless-deadline-ms`. */
  deadlineHeader?: string | false;
}

/** Options of the HTTP clients that are handed the URL, and so can balance: `meshFetch`, `meshRequest`. */
export interface HttpClientOptions extends HttpOutboundOptions {
  /**
   * Base URLs (`http://10.0.0.7:8080`) of the service's endpoints, static shorthand for
   * `discovery`: each attempt goes to one of them through the balance layer (P2C over
   * peak-EWMA); the caller's URL keeps only its path and query (`fetch('http://users/v1/u/42')`
   * or `fetch('/v1/u/42')`).
   */
  endpoints?: readonly string[];
  /** Count 4xx (other than 408/429) as failures. Default false. */
  clientErrorsAreFailures?: boolean;
}

/** The zod shape of {@link HttpOutboundOptions}, defaults applied. */
export const httpOutboundShape = {
  ...outboundShape,
  retryNonIdempotent: z.boolean({ error: 'must be true or false' }).default(false),
  replayBuffer: int(0, 16 * 1024 * 1024).default(DEFAULT_REPLAY_LIMIT),
  deadlineHeader: z
    .union([z.literal(false), z.string().regex(/^[a-z0-9-]+$/i, { error: 'must be a header name' })], {
      error: 'must be a header name or false',
    })
    .default(DEADLINE_HEADER),
};

/** The zod shape of {@link HttpClientOptions}, defaults applied. */
export const httpClientShape = {
  ...httpOutboundShape,
  endpoints: z.array(z.string(), { error: 'must be a list of base URLs' }).optional(),
  clientErrorsAreFailures: z.boolean({ error: 'must be true or false' }).default(false),
};
