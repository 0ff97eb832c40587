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

/** `/stack`: each registered stack with its layers, outermost first. */
export function stackReport(sources: AdminSources): { service: string; layers: LayerDescription[] }[] {
  return sources.stacks.list().map((stack) => ({ service: stack.name, layers: safeDescribe(stack) }));
}

function safeDescribe(stack: { describe(): LayerDescription[] }): LayerDescription[] {
  try {
    return stack.describe();
  } catch (error) {
    return [{ layer: 'error', params: { message: String(error) } }];
  }
}

/** `/endpoints`: every layer that describes endpoints (a balancer), with its endpoints as it describes them. */
export function endpointsReport(sources: AdminSources): { service: string; layer: string; endpoints: unknown[] }[] {
  const out: { service: string; layer: string; endpoints: unknown[] }[] = [];
  for (const { service, layers } of stackReport(sources)) {
    for (const layer of layers) {
      const endpoints = layer.state?.endpoints;
      if (Array.isArray(endpoints)) out.push({ service, layer: layer.layer, endpoints });
    }
  }
  return out;
}

/** Breakers (any layer whose name mentions a circuit or breaker) and their described state. */
export function breakersReport(sources: AdminSources): { service: string; layer: string; state: unknown }[] {
  const out: { service: string; layer: string; state: unknown }[] = [];
  for (const { service, layers } of stackReport(sources)) {
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

export function statsDocument(sources: AdminSources, windowMs = sources.windowMs): StatsDocument {
  return {
    time: Date.now(),
    windowMs,
    ready: readyReport(sources).ready,
    services: sources.metrics.snapshot({ windowMs }),
    endpoints: endpointsReport(sources),
    breakers: breakersReport(sources),
    config: configReport(sources, false),
  };
}

/** JSON that survives what descriptions may hold: `Infinity`, bigints, functions, cycles, errors. */
export function toJson(value: unknown): string {
  const seen = new WeakSet<object>();
  return JSON.stringify(
    value,
    (_key, v: unknown) => {
      if (typeof v === 'number' && !Number.isFinite(v)) return Number.isNaN(v) ? null : v > 0 ? 'Infinity' : '-Infinity';
      if (typeof v === 'bigint') return v.toString();
      if (typeof v === 'function') return `[function ${v.name || 'anonymous'}]`;
      if (v instanceof Error) return { name: v.name, message: v.message };
      if (v instanceof Map) return Object.fromEntries(v);
      if (v instanceof Set) return [...v];
      if (v !== null && typeof v === 'object') {
        if (seen.has(v)) return '[circular]';
        seen.add(v);
      }
      return v;
    },
    2,
  );
}
