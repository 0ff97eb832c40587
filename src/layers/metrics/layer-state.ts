/**
 * Breaker states and endpoint load as gauges, and discovery errors as a counter, read at scrape
 * time from the `describe()` of the layers a metrics layer wraps — never counted on the hot
 * path, and never by reaching into a layer (a layer does not touch another's state;
 * descriptions are the public face).
 *
 * Which stacks: each stack's outermost metrics layer reports the breakers and balancers it
 * wraps (put the call-scope layer outermost, as the module doc says, and it sees them all). A
 * breaker placed outside every metrics layer is not reported; stacks without a metrics layer
 * neither — `/stack` and `/endpoints` still show them.
 *
 * What is read: any layer whose name mentions a circuit or breaker and whose `state.state` is a
 * breaker state; any layer with `state.endpoints` (a list of `{ id | address, state, pending,
 * ewmaMs }`, as the balancer describes them); any layer with `state.discovery` holding a
 * `source` name and an `errors` count (a discovery's own description). Unknown fields are
 * skipped, so a hand-written layer that describes itself differently costs a missing gauge,
 * not a failed scrape.
 *
 * @module
 */

import type { LayerDescription } from '../../core/service.js';
import type { Sample } from './exposition.js';
import { type MetricsState, OVERFLOW } from './state.js';

/** Breaker states, one gauge series each (`sidecarless_circuit_state`). */
export const CIRCUIT_STATES = ['closed', 'open', 'half-open', 'isolated'] as const;

/** Balancer endpoint states, one gauge series each (`sidecarless_endpoint_state`); `active` is ready. */
export const ENDPOINT_STATES = ['active', 'ejected', 'probing', 'removed'] as const;

/** What is read from the layers' descriptions at scrape time, as samples of their families. */
export interface LayerGauges {
  /** `{service, state}`: breakers in that state (1 for the one a single breaker is in, else 0). */
  readonly circuit: Sample[];
  /** `{service, endpoint}`: calls in flight on the endpoint. */
  readonly pending: Sample[];
  /** `{service, endpoint}`: the Peak-EWMA round-trip estimate, seconds. */
  readonly ewma: Sample[];
  /** `{service, endpoint, state}`: 1 for the endpoint's state, else 0 (the overflow row counts). */
  readonly endpointState: Sample[];
  /**
   * `{service, discovery}`: failed lookups of the discovery (by its source name) feeding a
   * balancer — the discovery's own `stats.errors`, as the balancer describes it, so an error
   * is counted whatever event hub the discovery publishes its `discovery-error` on. Counted per
   * source name: discoveries of one name feeding one service are taken as one (the highest
   * count), so two separate sources of the same name undercount, and the count can drop when the
   * stack holding the highest closes (a counter reset to Prometheus). Name sources apart to count
   * them apart.
   */
  readonly discoveryErrors: Sample[];
}

interface EndpointRow {
  pending: number;
  ewmaMs: number | undefined;
  readonly states: number[];
}

/**
 * Reads the gauges of every state that reports layer states. Rows with the same labels (two
 * breakers in one service, two stacks of one name) are summed, so every series is unique — a
 * duplicate would make the scrape invalid. Past a layer's endpoint limit further endpoints are
 * summed into `endpoint="overflow"`, whose EWMA is left out (an average of unrelated endpoints
 * would mislead).
 */
export function collectLayerGauges(states: Iterable<MetricsState>): LayerGauges {
  const circuits = new Map<string, number[]>();
  const endpoints = new Map<string, Map<string, EndpointRow>>();
  const discoveryErrors = new Map<string, Map<string, number>>();
  for (const state of states) {
    const describe = state.layerStates;
    if (describe === undefined) continue;
    let layers: readonly LayerDescription[];
    try {
      layers = describe();
    } catch {
      continue; // a layer that cannot describe itself must not break the scrape
    }
    for (const layer of layers) {
      const s = layer.state;
      if (s === undefined) continue;
      if (/circuit|breaker/i.test(layer.layer)) {
        const i = CIRCUIT_STATES.indexOf(s.state as (typeof CIRCUIT_STATES)[number]);
        if (i >= 0) {
          let counts = circuits.get(state.service);
          if (counts === undefined) circuits.set(state.service, (counts = CIRCUIT_STATES.map(() => 0)));
          counts[i] = (counts[i] as number) + 1;
        }
      }
      if (Array.isArray(s.endpoints)) {
        let rows = endpoints.get(state.service);
        if (rows === undefined) endpoints.set(state.service, (rows = new Map()));
        addEndpoints(rows, s.endpoints, state.maxEndpoints);
      }
      const discovery = s.discovery as { source?: unknown; errors?: unknown } | null | undefined;
      if (
        discovery !== null &&
        typeof discovery === 'object' &&
        typeof discovery.source === 'string' &&
        typeof discovery.errors === 'number'
      ) {
        let sources = discoveryErrors.get(state.service);
        if (sources === undefined) discoveryErrors.set(state.service, (sources = new Map()));
        // One discovery feeding two balancers of a service (two stacks of one name sharing a DNS
        // source) is described twice with the same count: taken once, not summed.
        sources.set(discovery.source, Math.max(sources.get(discovery.source) ?? 0, discovery.errors));
      }
    }
  }
  const out: LayerGauges = { circuit: [], pending: [], ewma: [], endpointState: [], discoveryErrors: [] };
  for (const [service, counts] of circuits) {
    CIRCUIT_STATES.forEach((name, i) => {
      out.circuit.push({ suffix: '', labels: { service, state: name }, value: counts[i] as number });
    });
  }
  for (const [service, rows] of endpoints) {
    for (const [endpoint, row] of rows) {
      const labels = { service, endpoint };
      out.pending.push({ suffix: '', labels, value: row.pending });
      if (row.ewmaMs !== undefined) out.ewma.push({ suffix: '', labels, value: row.ewmaMs / 1000 });
      ENDPOINT_STATES.forEach((name, i) => {
        out.endpointState.push({ suffix: '', labels: { ...labels, state: name }, value: row.states[i] as number });
      });
    }
  }
  for (const [service, sources] of discoveryErrors) {
    for (const [discovery, value] of sources) out.discoveryErrors.push({ suffix: '', labels: { service, discovery }, value });
  }
  return out;
}

/** Adds one balancer's described endpoints to a service's rows, the first `limit` by their own label. */
function addEndpoints(rows: Map<string, EndpointRow>, described: readonly unknown[], limit: number): void {
  let kept = 0;
  for (const item of described) {
    if (item === null || typeof item !== 'object') continue;
    const e = item as { id?: unknown; address?: unknown; state?: unknown; pending?: unknown; ewmaMs?: unknown };
    const id = typeof e.id === 'string' ? e.id : typeof e.address === 'string' ? e.address : undefined;
    if (id === undefined) continue;
    const own = kept < limit && id !== OVERFLOW;
    if (own) kept++;
    const key = own ? id : OVERFLOW;
    let row = rows.get(key);
    const fresh = row === undefined;
    if (row === undefined) rows.set(key, (row = { pending: 0, ewmaMs: undefined, states: ENDPOINT_STATES.map(() => 0) }));
    if (typeof e.pending === 'number') row.pending += e.pending;
    // One endpoint in two balancers of a service: the higher estimate, as Peak-EWMA would.
    if (own && typeof e.ewmaMs === 'number') row.ewmaMs = fresh ? e.ewmaMs : Math.max(row.ewmaMs ?? 0, e.ewmaMs);
    const i = ENDPOINT_STATES.indexOf(e.state as (typeof ENDPOINT_STATES)[number]);
    if (i >= 0) row.states[i] = (row.states[i] as number) + 1;
  }
}
