/**
 * What the admin endpoints report, gathered from the registries the application already has:
 * stacks (their `describe()`), metrics layers (their snapshot), config stores and readiness
 * gates. Nothing here reaches into a layer: endpoints and breaker states are read from layer
 * descriptions, so a balancer or breaker written later shows up as long as it describes itself
 * (`state.endpoints`, `state.state`).
 *
 * @module
 */

import type { ConfigStore } from '../core/config-store.js';
import type { StackRegistry } from '../core/registry.js';
import type { LayerDescription } from '../core/service.js';
import type { MetricsRegistry, ServiceStats } from '../layers/metrics/index.js';
import type { Readiness } from '../layers/readiness/index.js';

/** Where the admin server looks. */
export interface AdminSources {
  readonly stacks: StackRegistry;
  readonly metrics: MetricsRegistry;
  readonly stores: ReadonlyMap<string, ConfigStore<unknown>>;
  readonly readiness: ReadonlyMap<string, Readiness>;
  readonly windowMs: number;
}

/** `/ready`: ready when every gate is; otherwise the latches still held, per gate. */
export function readyReport(sources: AdminSources): { ready: boolean; pending: Record<string, string[]> } {
  const pending: Record<string, string[]> = {};
  let ready = true;
  for (const [name, gate] of sources.readiness) {
    if (!gate.isReady) {
      ready = false;
      pending[name] = gate.pending;
    }
  }
  return { ready, pending };
}

/** `/config`: per store, the snapshot in force and the last rejected document with its problems. */
export function configReport(sources: AdminSources, withValues = true): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, store] of sources.stores) {
    const current = store.current;
    out[name] = {
      version: current.version,
      appliedAt: new Date(current.appliedAt).toISOString(),
      ...(withValues ? { value: current.value } : {}),
      lastRejected: store.lastRejected
        ? { ...store.lastRejected, rejectedAt: new Date(store.lastRejected.rejectedAt).toISOString() }
        : null,
    };
  }
  return out;
}

/** A layer as the admin routes report it: its description as plain data, or `error` saying why it has none. */
export type ReportedLayer = LayerDescription & { readonly error?: string };

/** One stack as `/stack` shows it. */
export interface StackReport {
  readonly service: string;
  readonly layers: ReportedLayer[];
}

/**
 * `/stack`: each registered stack with its layers, outermost first. Each description is copied
 * to plain data here, layer by layer, so that a getter or `toJSON` of a description that throws
 * marks that layer instead of failing the whole page when the report is written out; the
 * reports built from it then read data that can no longer throw either.
 */
export function stackReport(sources: AdminSources): StackReport[] {
  // One budget for the whole report, as when it is written out: a budget per layer would let
  // many big descriptions (a shared endpoint list in every stack) each be copied up to it.
  const budget: JsonBudget = { written: 0 };
  return sources.stacks.list().map((stack) => ({ service: stack.name, layers: safeDescribe(stack, budget) }));
}

function safeDescribe(stack: { describe(): LayerDescription[] }, budget: JsonBudget): ReportedLayer[] {
  let layers: unknown;
  try {
    layers = stack.describe();
  } catch (error) {
    return [{ layer: 'error', params: { message: messageOf(error) } }];
  }
  if (!Array.isArray(layers)) return [{ layer: 'error', params: { message: 'describe() did not return a list of layers' } }];
  return layers.map((description) => plainLayer(description, budget));
}

function plainLayer(description: unknown, budget: JsonBudget): ReportedLayer {
  if (budget.written > MAX_JSON_OBJECTS) {
    return { layer: nameOf(description), params: {}, error: 'truncated: the report reached its size limit' };
  }
  let plain: unknown;
  try {
    plain = JSON.parse(toJson(description, budget, undefined) ?? 'null');
  } catch (error) {
    return { layer: nameOf(description), params: {}, error: `description could not be read: ${messageOf(error)}` };
  }
  if (plain === null || typeof plain !== 'object' || Array.isArray(plain)) {
    return { layer: 'error', params: {}, error: 'not a layer description' };
  }
  return plain as ReportedLayer;
}

/** The layer's name if it can be read at all: the marker still says which layer failed. */
function nameOf(description: unknown): string {
  try {
    const name = (description as { layer?: unknown } | null)?.layer;
    return typeof name === 'string' ? name : 'error';
  } catch {
    return 'error';
  }
}

/** A thrown value as text; it may be anything, even a value with no string form (`Object.create(null)`). */
function messageOf(error: unknown): string {
  try {
    return error instanceof Error ? String(error.message) : String(error);
  } catch {
    return 'unprintable error';
  }
}

/** `/endpoints`: every layer of `stacks` that describes endpoints (a balancer), with its endpoints as it describes them. */
export function endpointsReport(stacks: readonly StackReport[]): { service: string; layer: string; endpoints: unknown[] }[] {
  const out: { service: string; layer: string; endpoints: unknown[] }[] = [];
  for (const { service, layers } of stacks) {
    for (const layer of layers) {
      const endpoints = layer.state?.endpoints;
      if (Array.isArray(endpoints)) out.push({ service, layer: layer.layer, endpoints });
    }
  }
  return out;
}

/** The breakers of `stacks` (any layer whose name mentions a circuit or breaker) and their described state. */
export function breakersReport(stacks: readonly StackReport[]): { service: string; layer: string; state: unknown }[] {
  const out: { service: string; layer: string; state: unknown }[] = [];
  for (const { service, layers } of stacks) {
    for (const layer of layers) {
      if (/circuit|breaker/i.test(layer.layer)) out.push({ service, layer: layer.layer, state: layer.state?.state ?? layer.state ?? null });
    }
  }
  return out;
}

/** `/api/stats`: everything the dashboard and `sidecarless stat` show, in one document. */
export interface StatsDocument {
  /** Wall-clock time of the document, ms since the epoch. */
  readonly time: number;
  readonly windowMs: number;
  readonly ready: boolean;
  readonly services: ServiceStats[];
  readonly endpoints: { service: string; layer: string; endpoints: unknown[] }[];
  readonly breakers: { service: string; layer: string; state: unknown }[];
  readonly config: Record<string, unknown>;
}

/** The `/api/stats` document over `windowMs`. */
export function statsDocument(sources: AdminSources, windowMs = sources.windowMs): StatsDocument {
  // Described once for both reports: a description walks every layer of every stack, and two
  // walks could also disagree (an endpoint ejected in between shows in one report, not the other).
  const stacks = stackReport(sources);
  return {
    time: Date.now(),
    windowMs,
    ready: readyReport(sources).ready,
    services: sources.metrics.snapshot({ windowMs }),
    endpoints: endpointsReport(stacks),
    breakers: breakersReport(stacks),
    config: configReport(sources, false),
  };
}

/** Values (objects and their entries) {@link toJson} writes at most: a few MB of JSON. */
const MAX_JSON_OBJECTS = 200_000;

/** What a document has written so far against {@link MAX_JSON_OBJECTS}; shared to bound several writes together. */
export interface JsonBudget {
  written: number;
}

/**
 * JSON that survives what descriptions may hold: `Infinity`, bigints, functions, errors, maps,
 * sets and cycles. Only a true cycle — an object inside itself — becomes `"[circular]"`; an
 * object reached twice along different paths (one endpoint list in two descriptions) is written
 * both times. Writing shared objects again can grow exponentially (a chain of objects each
 * holding the next twice), so past {@link MAX_JSON_OBJECTS} values the rest is `"[truncated]"`:
 * an admin page answers rather than failing on a string too long.
 */
export function toJson(value: unknown, budget: JsonBudget = { written: 0 }, indent: number | undefined = 2): string {
  // The objects from the root down to the value being written, each as it came (`raw`, what a
  // cycle points back to) and as written (`out`: a Map becomes an object, an Error a plain one;
  // JSON.stringify walks `out`, so it is the holder of the next values). Depth-first order means
  // that when a value's holder is not on top, the values above it are finished: popped.
  const path: { raw: object; out: unknown }[] = [];
  return JSON.stringify(
    value,
    function (this: unknown, _key, v: unknown) {
      if (typeof v === 'number' && !Number.isFinite(v)) return Number.isNaN(v) ? null : v > 0 ? 'Infinity' : '-Infinity';
      if (typeof v === 'bigint') return v.toString();
      if (typeof v === 'function') return `[function ${v.name || 'anonymous'}]`;
      // A long string reached along many paths grows the text too: charged by its length.
      if (typeof v === 'string' && v.length > 64) {
        budget.written += v.length >> 6;
        if (budget.written > MAX_JSON_OBJECTS) return '[truncated]';
      }
      if (v === null || typeof v !== 'object') return v;
      while (path.length > 0 && (path[path.length - 1] as { out: unknown }).out !== this) path.pop();
      if (path.some((p) => p.raw === v)) return '[circular]';
      // Counted by size (an array's items, an object's keys), not one per object: a shared list of
      // strings written again and again grows the text as fast as nested objects do.
      budget.written += 1 + (Array.isArray(v) ? v.length : v instanceof Map || v instanceof Set ? v.size : Object.keys(v).length);
      // Long keys are charged as long strings are.
      if (!Array.isArray(v))
        for (const key of v instanceof Map ? v.keys() : Object.keys(v))
          if (typeof key === 'string' && key.length > 64) budget.written += key.length >> 6;
      if (budget.written > MAX_JSON_OBJECTS) return '[truncated]';
      const out =
        v instanceof Error
          ? { name: v.name, message: v.message }
          : v instanceof Map
            ? Object.fromEntries(v)
            : v instanceof Set
              ? [...v]
              : v;
      path.push({ raw: v, out });
      return out;
    },
    indent,
  );
}
