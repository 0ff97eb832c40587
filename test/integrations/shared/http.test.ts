import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TimeoutError } from '../../../src/core/errors.js';
import { grpcClassifier } from '../../../src/integrations/grpc/index.js';
import { appendHeader, httpClassifier, parseDeadlineHeader, parseRetryAfter } from '../../../src/integrations/shared/http.js';

test('http classifier: 5xx retryable (not 501), 4xx a success unless told, 429/503 carry Retry-After', () => {
  const c = httpClassifier();
  const of = (status: number, headers: Record<string, string> = {}) => c.classifyResult(new Response(null, { status, headers }));
  assert.deepEqual({ ...of(200) }, { kind: 'success', retryable: false, status: '200', retryAfterMs: undefined });
  assert.equal(of(404).kind, 'success');
  assert.equal(httpClassifier({ clientErrorsAreFailures: true }).classifyResult({ statusCode: 404 }).kind, 'failure');
  assert.equal(of(500).retryable, true);
  assert.equal(of(501).retryable, false);
  assert.equal(of(501).kind, 'failure');
  assert.equal(of(503, { 'retry-after': '2' }).retryAfterMs, 2000);
  assert.equal(c.classifyResult({ statusCode: 429, headers: { 'retry-after': '1' } }).retryAfterMs, 1000);
  assert.equal(of(503).retryAfterMs, undefined);
  assert.equal(of(200), of(200), 'plain statuses are cached, not allocated per call');
  assert.equal(c.classifyError(new TimeoutError(10)).status, 'timeout');
});

test('Retry-After: seconds or an HTTP date; junk ignored', () => {
  assert.equal(parseRetryAfter('3'), 3000);
  assert.equal(parseRetryAfter(new Date(Date.UTC(2030, 0, 1, 0, 0, 5)).toUTCString(), Date.UTC(2030, 0, 1)), 5000);
  assert.equal(parseRetryAfter('soon'), undefined);
  assert.equal(parseRetryAfter(null), undefined);
  // Seconds of any length (the caller bounds the wait); a date must be a date: Date.parse reads
  // "1.5" and " 5" as days in 2001, a wait of 0.
  assert.equal(parseRetryAfter(' 120 '), 120_000);
  assert.equal(parseRetryAfter('99999999999'), 99_999_999_999_000);
  assert.equal(parseRetryAfter('Sun, 22 Nov 2026 09:00:00 GMT', Date.parse('2026-11-22T10:00:00Z')), 0);
  for (const bad of ['', '-1', '1.5', ' 5 x']) assert.equal(parseRetryAfter(bad), undefined, bad);
});

test('deadline headers: ours in ms, or grpc-timeout units', () => {
  assert.equal(parseDeadlineHeader('250'), 250);
  assert.equal(parseDeadlineHeader(undefined, '2S'), 2000);
  assert.equal(parseDeadlineHeader(undefined, '100m'), 100);
  assert.equal(parseDeadlineHeader('-5'), undefined);
  assert.equal(parseDeadlineHeader(undefined, '5x'), undefined);
});

test('appendHeader copies every undici header shape', () => {
  const object = { a: '1' };
  assert.deepEqual(appendHeader(object, 'b', '2'), { a: '1', b: '2' });
  assert.deepEqual(object, { a: '1' });
  assert.deepEqual(appendHeader(['a', '1'], 'b', '2'), ['a', '1', 'b', '2']);
  assert.deepEqual(appendHeader([['a', '1']], 'b', '2'), [
    ['a', '1'],
    ['b', '2'],
  ]);
  assert.deepEqual(appendHeader(undefined, 'b', '2'), { b: '2' });
});

test('gRPC classifier: UNAVAILABLE and RESOURCE_EXHAUSTED retryable, DEADLINE_EXCEEDED a timeout', () => {
  assert.deepEqual(
    [14, 8, 4, 3, 13].map((code) => {
      const v = grpcClassifier.classifyError({ code });
      return `${v.status}:${v.retryable}`;
    }),
    ['unavailable:true', 'resource_exhausted:true', 'timeout:true', 'invalid_argument:false', 'internal:false'],
  );
  const pushback = { code: 8, metadata: { get: (k: string) => (k === 'grpc-retry-pushback-ms' ? ['150'] : []) } };
  assert.equal(grpcClassifier.classifyError(pushback).retryAfterMs, 150);
});
