/**
 * Reading a mesh config document safely: the byte limit, JSON or YAML parsing, and a scan of the
 * raw tree *before* zod sees it — prototype-polluting keys (`__proto__`, `constructor`,
 * `prototype`), non-plain values, cycles and excessive nesting are problems, not surprises.
 * A document of the right shape is then checked by each layer it feeds, as the layer will check
 * it ({@link layerProblems}), so a document is never ACKed only for a layer to refuse it.
 * {@link validateMeshConfig} is the whole pipeline and fits {@link ConfigStore}'s `validate`.
 *
 * @module
 */

import { parseDocument } from 'yaml';
import { z } from 'zod';
import type { Validator } from '../core/config-store.js';
import type { OptionProblem } from '../core/errors.js';
import { int, parseOptions, problemsOf } from '../core/validate.js';
import { MAX_REPORTED_PROBLEMS } from './protocol.js';
import { type MeshConfig, meshConfigSchema } from './schema.js';
import { layerProblems } from './selectors.js';

/** Limits on a document, so a hostile or broken one costs bounded work. */
export interface DocumentLimits {
  /** Largest document, in bytes of its JSON or YAML text, 1 byte to 1 GiB. Default 1 MiB. */
  maxBytes?: number;
  /** Deepest nesting of objects and arrays, 1 to 1000. Default 32. */
  maxDepth?: number;
}

/** Default {@link DocumentLimits.maxBytes}. */
export const DEFAULT_MAX_BYTES = 1_048_576;
const DEFAULT_MAX_DEPTH = 32;
const MAX_PROBLEMS = MAX_REPORTED_PROBLEMS;
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

// A NaN limit would compare false with every size and so disable the limit altogether.
const limitsSchema = z.object({
  maxBytes: int(1, 1_073_741_824).default(DEFAULT_MAX_BYTES),
  maxDepth: int(1, 1000).default(DEFAULT_MAX_DEPTH),
});

/**
 * Checks {@link DocumentLimits}, throwing an `InvalidOptionError` naming each bad field
 * (under `field`); returns them with defaults filled in.
 */
export function resolveLimits(limits: DocumentLimits | undefined, field = 'limits'): Required<DocumentLimits> {
  return parseOptions(limitsSchema, limits ?? {}, field);
}

/** The outcome of reading or validating a document. */
export type Verdict<T> = { ok: true; value: T } | { ok: false; problems: OptionProblem[] };

const DOCUMENT = '(document)';
const POLLUTION = ' (prototype pollution)';
const NON_FINITE = 'must be a finite number';

function tooBig(bytes: number, max: number): OptionProblem {
  return { field: DOCUMENT, message: `is ${bytes} bytes, more than the limit of ${max} bytes` };
}

/**
 * Parses JSON or YAML text (YAML 1.2 core schema, unique keys, few aliases) into plain data,
 * after checking its size. Does not validate against the schema.
 */
export function parseMeshText(text: string | Uint8Array, limits: DocumentLimits = {}): Verdict<unknown> {
  const maxBytes = limits.maxBytes ?? DEFAULT_MAX_BYTES;
  const bytes = typeof text === 'string' ? Buffer.byteLength(text) : text.byteLength;
  if (bytes > maxBytes) return { ok: false, problems: [tooBig(bytes, maxBytes)] };
  let source: string;
  try {
    source = typeof text === 'string' ? text : new TextDecoder('utf-8', { fatal: true }).decode(text);
  } catch {
    return { ok: false, problems: [{ field: DOCUMENT, message: 'is not valid UTF-8' }] };
  }
  if (source.trimStart().startsWith('{')) {
    try {
      return { ok: true, value: JSON.parse(source) };
    } catch (error) {
      return { ok: false, problems: [{ field: DOCUMENT, message: `is not valid JSON: ${(error as Error).message}` }] };
    }
  }
  // A YAML alias can expand a small text into a huge tree ("billion laughs"): allow few.
  const doc = parseDocument(source, { schema: 'core', uniqueKeys: true, merge: false, prettyErrors: true });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      problems: doc.errors
        .slice(0, MAX_PROBLEMS)
        .map((e) => ({ field: DOCUMENT, message: `is not valid YAML: ${e.message.split('\n')[0]}` })),
    };
  }
  try {
    return { ok: true, value: doc.toJS({ maxAliasCount: 16 }) };
  } catch (error) {
    return { ok: false, problems: [{ field: DOCUMENT, message: `is not valid YAML: ${(error as Error).message}` }] };
  }
}

function isPlainContainer(value: object): boolean {
  if (Array.isArray(value)) return true;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Walks raw data (iteratively, so depth cannot overflow the stack) and lists every
 * prototype-polluting key, non-plain value, cycle and over-deep container, by path.
 */
export function scanRaw(raw: unknown, maxDepth = DEFAULT_MAX_DEPTH): OptionProblem[] {
  const problems: OptionProblem[] = [];
  const stack: { value: unknown; path: string[]; ancestors: Set<object> }[] = [{ value: raw, path: [], ancestors: new Set() }];
  while (stack.length > 0 && problems.length < MAX_PROBLEMS) {
    const { value, path, ancestors } = stack.pop() as (typeof stack)[number];
    const field = path.join('.') || '(root)';
    if (value === null || typeof value === 'string' || typeof value === 'boolean') continue;
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) problems.push({ field, message: `${NON_FINITE} (got ${value})` });
      continue;
    }
    if (typeof value !== 'object') {
      problems.push({ field, message: `must be plain JSON data (got a ${typeof value})` });
      continue;
    }
    if (!isPlainContainer(value)) {
      problems.push({ field, message: 'must be plain JSON data (got an object with a prototype)' });
      continue;
    }
    if (ancestors.has(value)) {
      problems.push({ field, message: 'contains itself (a cycle)' });
      continue;
    }
    if (path.length >= maxDepth) {
      problems.push({ field, message: `is nested deeper than ${maxDepth} levels` });
      continue;
    }
    const inner = new Set(ancestors).add(value);
    for (const key of Object.keys(value)) {
      if (FORBIDDEN_KEYS.has(key)) {
        problems.push({ field: [...path, key].join('.'), message: `"${key}" is not allowed as a key${POLLUTION}` });
        continue;
      }
      stack.push({ value: (value as Record<string, unknown>)[key], path: [...path, key], ancestors: inner });
    }
  }
  return problems;
}

// zod words a bad record key generically; say what a name may be.
function nameProblem(problem: OptionProblem): OptionProblem {
  if (!problem.message.startsWith('Invalid key in record')) return problem;
  return { field: problem.field, message: 'is not a valid name (service names: 1 to 128 letters, digits, "_", ".", ":" or "-")' };
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
    Object.freeze(value);
  }
  return value;
}

/**
 * A {@link Validator} of mesh config documents with these limits. It accepts JSON or YAML text
 * (string or bytes) or already-parsed data; the result is deeply frozen.
 */
export function meshValidator(options: DocumentLimits = {}): Validator<MeshConfig> {
  const limits = resolveLimits(options);
  const { maxBytes } = limits;
  return (input: unknown) => {
    let raw = input;
    if (typeof input === 'string' || input instanceof Uint8Array) {
      const parsed = parseMeshText(input, limits);
      if (!parsed.ok) return parsed;
      raw = parsed.value;
    }
    const scanned = scanRaw(raw, limits.maxDepth);
    // A cycle, a non-plain value or excessive nesting stops here; a forbidden key or a non-finite
    // number (YAML's .inf and .nan) is reported and the rest of the document is checked still.
    const nonFinite = new Set(scanned.filter((p) => p.message.startsWith(NON_FINITE)).map((p) => p.field));
    if (scanned.some((p) => !p.message.endsWith(POLLUTION) && !p.message.startsWith(NON_FINITE))) return { ok: false, problems: scanned };
    if (typeof input !== 'string' && !(input instanceof Uint8Array)) {
      // Data that did not come as text is measured as the JSON it would be sent as.
      const bytes = Buffer.byteLength(JSON.stringify(raw) ?? '');
      if (bytes > maxBytes) return { ok: false, problems: [tooBig(bytes, maxBytes)] };
    }
    // Forbidden keys are reported, then left out of a copy so that zod still reports every
    // other problem without ever assigning such a key. The copy has null for a non-finite
    // number, which is reported already: zod's word on the same field is left out.
    const clean = scanned.length > 0 ? JSON.parse(JSON.stringify(raw, (key, value) => (FORBIDDEN_KEYS.has(key) ? undefined : value))) : raw;
    const result = meshConfigSchema.safeParse(clean);
    if (!result.success) {
      const rest = problemsOf(result.error, clean, '').filter((p) => !nonFinite.has(p.field));
      return { ok: false, problems: [...scanned, ...rest.map(nameProblem)].slice(0, MAX_PROBLEMS) };
    }
    if (scanned.length > 0) return { ok: false, problems: scanned };
    // Only a document of the right shape reaches the layers' checks: they read it as typed.
    const refused = layerProblems(result.data);
    if (refused.length > 0) return { ok: false, problems: refused.slice(0, MAX_PROBLEMS) };
    return { ok: true, value: deepFreeze(result.data) };
  };
}

/** Validates a mesh config document with the default limits; fits `ConfigStore`'s `validate`. */
export const validateMeshConfig: Validator<MeshConfig> = meshValidator();
