/**
 * The live dashboard: one self-contained page (no CDN, no build step) that polls `/api/stats`
 * once a second and draws, per service, success rate, requests per second and p50/p95/p99
 * latency over the last two minutes as inline SVG charts, with endpoints, breaker states and
 * the config version next to them. Charts are drawn from the history the page keeps, so the
 * server stays stateless apart from the metrics it already has.
 *
 * @module
 */

const CSS = `
:root{--bg:#0f1419;--panel:#161d26;--line:#243040;--text:#d8e0ea;--dim:#7d8b9c;--ok:#3fb950;--warn:#d29922;--bad:#f85149;--p50:#58a6ff;--p95:#bc8cff;--p99:#ff7b72;--rps:#39c5cf}
*{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--text);font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif}
header{display:flex;align-items:center;gap:16px;padding:14px 24px;border-bottom:1px solid var(--line);background:#11181f;position:sticky;top:0}
header h1{font-size:18px;margin:0;font-weight:600;letter-spacing:.3px}header h1 span{color:var(--rps)}
.pill{padding:3px 10px;border-radius:999px;font-size:12px;border:1px solid var(--line);color:var(--dim)}
.pill.ok{color:var(--ok);border-color:#2a5b34}.pill.bad{color:var(--bad);border-color:#6b2a2a}
.spacer{flex:1}main{padding:20px 24px;display:grid;gap:18px}
.summary{display:grid;grid-template-columns:repeat(auto-fit,minmax(160px,1fr));gap:12px}
.stat{background:var(--panel);border:1px solid var(--line);border-radius:10px;padding:12px 16px}
.stat .v{font-size:26px;font-weight:600}.stat .k{color:var(--dim);font-size:12px;text-transform:uppercase;letter-spacing:.6px}
.card{background:var(--panel);border:1px solid var(--line);border-radius:12px;padding:16px}
.card h2{margin:0 0 4px;font-size:16px;display:flex;gap:12px;align-items:baseline}.card h2 small{color:var(--dim);font-weight:400}
.figures{display:flex;flex-wrap:wrap;gap:22px;margin:8px 0 12px;color:var(--dim)}.figures b{color:var(--text);font-size:18px;margin-left:4px}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:12px}
.chart{background:#0f151c;border:1px solid var(--line);border-radius:8px;padding:8px 10px}
.chart .t{font-size:12px;color:var(--dim);display:flex;gap:10px}.chart svg{width:100%;height:130px;display:block}
.legend i{display:inline-block;width:10px;height:3px;margin-right:4px;vertical-align:middle}
table{width:100%;border-collapse:collapse;font-size:13px}th,td{text-align:left;padding:6px 8px;border-bottom:1px solid var(--line)}th{color:var(--dim);font-weight:500}
.state{padding:2px 8px;border-radius:6px;font-size:12px;background:#1d2733}
.state.good,.v.good{color:var(--ok)}.v.warn{color:var(--warn)}.v.bad{color:var(--bad)}.state.good{color:var(--ok)}.state.warn{color:var(--warn)}.state.bad{color:var(--bad)}
.bar{height:6px;background:#1d2733;border-radius:3px;min-width:80px}.bar div{height:6px;border-radius:3px;background:var(--rps)}
.empty{color:var(--dim);font-style:italic}.rej{color:var(--bad);font-size:12px}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(380px,1fr));gap:18px}
`;

const SCRIPT = `
const MAX = 120, INTERVAL = 1000, history = new Map();
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]));
const pct = (v) => v == null ? '–' : (v * 100).toFixed(v >= 0.9995 || v === 0 ? 0 : 2) + '%';
const ms = (v) => v == null ? '–' : v < 10 ? v.toFixed(2) + ' ms' : v < 1000 ? v.toFixed(0) + ' ms' : (v / 1000).toFixed(2) + ' s';
const num = (v) => v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
const srClass = (v) => v == null ? '' : v >= 0.99 ? 'good' : v >= 0.9 ? 'warn' : 'bad';
// The states the mesh reports first (a half-open breaker is no open one, a probing or removed endpoint no healthy one), then words.
const STATE_CLASS = { open: 'bad', isolated: 'bad', ejected: 'bad', 'half-open': 'warn', probing: 'warn', removed: 'warn', closed: 'good', active: 'good' };
const stateClass = (s) => STATE_CLASS[String(s).toLowerCase()] ?? (/(?<!half-)open|fail|down|unhealthy|eject|isolat|bad/i.test(s) ? 'bad' : /half|prob|warm|pending|degraded|slow|drain|remov/i.test(s) ? 'warn' : 'good');

function push(key, s) {
  let h = history.get(key);
  if (!h) history.set(key, h = { sr: [], rps: [], p50: [], p95: [], p99: [] });
  h.sr.push(s.successRate == null ? null : s.successRate * 100); h.rps.push(s.rps);
  h.p50.push(s.latencyMs.p50); h.p95.push(s.latencyMs.p95); h.p99.push(s.latencyMs.p99);
  for (const k in h) if (h[k].length > MAX) h[k].shift();
  return h;
}

function chart(kind, lines, opts) {
  const W = 320, H = 130, L = 40, R = 6, T = 8, B = 16;
  const all = lines.flatMap((l) => l.values.filter((v) => v != null));
  let lo = opts.min ?? Math.min(0, ...all), hi = opts.max ?? Math.max(1e-9, ...all) * 1.15;
  if (opts.floor != null && all.length) lo = Math.min(opts.floor, Math.floor(Math.min(...all)));
  if (hi <= lo) hi = lo + 1;
  // The x axis spans the history kept so far (at least 30 s), so a fresh page fills its charts.
  const span = Math.max(30, ...lines.map((l) => l.values.length));
  const x = (i) => L + (i / (span - 1)) * (W - L - R), y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
  let g = '';
  for (let k = 0; k <= 3; k++) {
    const v = lo + ((hi - lo) * k) / 3, yy = y(v).toFixed(1);
    g += '<line x1="' + L + '" x2="' + (W - R) + '" y1="' + yy + '" y2="' + yy + '" stroke="#243040" stroke-width="1"/>';
    g += '<text x="' + (L - 4) + '" y="' + (+yy + 3) + '" fill="#7d8b9c" font-size="9" text-anchor="end">' + esc(opts.fmt(v)) + '</text>';
  }
  g += '<text x="' + L + '" y="' + (H - 3) + '" fill="#7d8b9c" font-size="9">-' + span + 's</text><text x="' + (W - R) + '" y="' + (H - 3) + '" fill="#7d8b9c" font-size="9" text-anchor="end">now</text>';
  for (const l of lines) {
    const off = span - l.values.length; let d = '', pen = false;
    l.values.forEach((v, i) => { if (v == null) { pen = false; return; } d += (pen ? 'L' : 'M') + x(off + i).toFixed(1) + ' ' + y(v).toFixed(1); pen = true; });
    if (l.fill && d) g += '<path d="' + d + 'L' + x(span - 1) + ' ' + y(lo) + 'L' + x(off) + ' ' + y(lo) + 'Z" fill="' + l.color + '" opacity=".12"/>';
    g += '<path class="line ' + kind + '" data-series="' + l.label + '" d="' + d + '" fill="none" stroke="' + l.color + '" stroke-width="1.8" stroke-linejoin="round"/>';
  }
  const last = lines[0].values[lines[0].values.length - 1];
  return '<svg viewBox="0 0 ' + W + ' ' + H + '" preserveAspectRatio="none" data-kind="' + kind + '" data-points="' + lines[0].values.length + '" data-last="' + (last ?? '') + '">' + g + '</svg>';
}

function serviceCard(s, attempts, h) {
  const r = s.retries, retried = r.retried, skipped = r.budget + r.not_retryable + r.exhausted + r.deadline + r.cancelled;
  const legend = (c, t) => '<span class="legend"><i style="background:' + c + '"></i>' + t + '</span>';
  const events = [...Object.entries(s.events), ...Object.entries(s.refusals || {}).map(([k, n]) => [k.replace(/^ERR_MESH_/, '').toLowerCase().replace(/_/g, '-'), n])]
    .filter(([, n]) => n > 0).map(([k, n]) => esc(k) + ' <b>' + n + '</b>').join(' · ');
  return '<section class="card service" data-service="' + esc(s.service) + '"><h2>' + esc(s.service) +
    ' <small>' + s.routes.length + ' route' + (s.routes.length === 1 ? '' : 's') + ' · ' + s.requests + ' requests</small></h2>' +
    '<div class="figures"><span>success <b class="sr state ' + srClass(s.successRate) + '">' + pct(s.successRate) + '</b></span>' +
    '<span>rps <b class="rps">' + num(s.rps) + '</b></span><span>p50 <b>' + ms(s.latencyMs.p50) + '</b></span>' +
    '<span>p95 <b>' + ms(s.latencyMs.p95) + '</b></span><span>p99 <b>' + ms(s.latencyMs.p99) + '</b></span>' +
    '<span>in flight <b>' + s.inFlight + '</b></span><span>retries <b>' + retried + '</b> sent / <b>' + skipped + '</b> skipped</span>' +
    (attempts ? '<span>actual: <b>' + num(attempts.rps) + '</b> attempts/s at <b>' + pct(attempts.successRate) + '</b></span>' : '') +
    (events ? '<span>' + events + '</span>' : '') + '</div><div class="charts">' +
    '<div class="chart"><div class="t">Success rate ' + legend('#3fb950', '%') + '</div>' + chart('sr', [{ values: h.sr, color: '#3fb950', label: 'sr', fill: true }], { max: 100, floor: 90, fmt: (v) => v.toFixed(0) + '%' }) + '</div>' +
    '<div class="chart"><div class="t">Requests / s ' + legend('#39c5cf', 'rps') + '</div>' + chart('rps', [{ values: h.rps, color: '#39c5cf', label: 'rps', fill: true }], { fmt: num }) + '</div>' +
    '<div class="chart"><div class="t">Latency ' + legend('#58a6ff', 'p50') + legend('#bc8cff', 'p95') + legend('#ff7b72', 'p99') + '</div>' +
    chart('latency', [{ values: h.p99, color: '#ff7b72', label: 'p99' }, { values: h.p95, color: '#bc8cff', label: 'p95' }, { values: h.p50, color: '#58a6ff', label: 'p50' }], { fmt: (v) => v < 10 ? v.toFixed(1) : v.toFixed(0) }) +
    '</div></div></section>';
}

function endpointsTable(groups) {
  if (!groups.length) return '<p class="empty">No balancer describes endpoints.</p>';
  // Balancers describe endpoints in their own words: take the usual names for each column.
  const loadOf = (e) => [e.load, e.pending, e.inFlight].find((v) => typeof v === 'number') ?? null;
  const idOf = (e) => e.id ?? (e.address != null && e.port != null ? e.address + ':' + e.port : e.address) ?? e.endpoint ?? e.url ?? JSON.stringify(e);
  let rows = '', maxLoad = 0;
  for (const g of groups) for (const e of g.endpoints) maxLoad = Math.max(maxLoad, loadOf(e) ?? 0);
  for (const g of groups) for (const e of g.endpoints) {
    const st = e.state ?? e.status ?? (e.healthy === false ? 'unhealthy' : 'ready'), load = loadOf(e), rtt = e.ewmaMs ?? e.latencyMs;
    rows += '<tr><td>' + esc(g.service) + '</td><td>' + esc(idOf(e)) + '</td><td><span class="state ' + stateClass(st) + '">' + esc(st) + '</span></td><td>' +
      (load == null ? '–' : '<div class="bar"><div style="width:' + (maxLoad ? Math.max(2, (100 * load) / maxLoad) : 0) + '%"></div></div> ' + num(load)) +
      '</td><td>' + (typeof rtt === 'number' ? ms(rtt) : '–') + '</td><td>' + esc(e.calls ?? '–') + '</td><td>' + esc(e.weight ?? '–') + '</td></tr>';
  }
  return '<table><thead><tr><th>service</th><th>endpoint</th><th>state</th><th>load</th><th>latency</th><th>calls</th><th>weight</th></tr></thead><tbody>' + rows + '</tbody></table>';
}

function breakersList(list) {
  if (!list.length) return '<p class="empty">No circuit breakers in any stack.</p>';
  return '<table><tbody>' + list.map((b) => { const st = typeof b.state === 'string' ? b.state : JSON.stringify(b.state);
    return '<tr><td>' + esc(b.service) + '</td><td>' + esc(b.layer) + '</td><td><span class="state ' + stateClass(st) + '">' + esc(st) + '</span></td></tr>'; }).join('') + '</tbody></table>';
}

function configList(config) {
  const names = Object.keys(config);
  if (!names.length) return '<p class="empty">No config store given to the admin server.</p>';
  return '<table><tbody>' + names.map((n) => { const c = config[n], rej = c.lastRejected;
    return '<tr><td>' + esc(n) + '</td><td>version <b class="cfg-version">' + esc(c.version) + '</b><br><small>' + esc(c.appliedAt) + '</small></td><td>' +
      (rej ? '<div class="rej">rejected ' + esc(rej.version) + ': ' + rej.problems.map((p) => esc(p.field + ' ' + p.message)).join('; ') + '</div>' : '<span class="state good">no rejections</span>') + '</td></tr>'; }).join('') + '</tbody></table>';
}

function update(doc) {
  const calls = doc.services.filter((s) => s.scope === 'call'), attempts = new Map(doc.services.filter((s) => s.scope === 'attempt').map((s) => [s.service, s]));
  const shown = calls.length ? calls : doc.services;
  const rps = shown.reduce((a, s) => a + s.rps, 0), req = shown.reduce((a, s) => a + s.windowRequests * (s.successRate ?? 0), 0), tot = shown.reduce((a, s) => a + s.windowRequests, 0);
  $('sum-rps').textContent = num(rps); $('sum-sr').textContent = pct(tot ? req / tot : null); $('sum-sr').className = 'v ' + srClass(tot ? req / tot : null);
  $('sum-services').textContent = shown.length; $('sum-endpoints').textContent = doc.endpoints.reduce((a, g) => a + g.endpoints.length, 0);
  $('services').innerHTML = shown.length ? shown.map((s) => serviceCard(s, s.scope === 'call' ? attempts.get(s.service) : null, push(s.scope + ':' + s.service, s))).join('') : '<p class="empty card">No metrics layer registered yet: add .metrics() to a stack.</p>';
  $('endpoints').innerHTML = endpointsTable(doc.endpoints); $('breakers').innerHTML = breakersList(doc.breakers); $('config').innerHTML = configList(doc.config);
  const ready = $('ready'); ready.textContent = doc.ready ? 'ready' : 'not ready'; ready.className = 'pill ' + (doc.ready ? 'ok' : 'bad');
  const versions = Object.values(doc.config).map((c) => c.version); $('version').textContent = versions.length ? 'config ' + versions.join(', ') : 'no live config';
  $('updated').textContent = 'updated ' + new Date(doc.time).toLocaleTimeString() + ' · window ' + doc.windowMs / 1000 + 's';
  $('conn').className = 'pill ok'; $('conn').textContent = 'live';
}

async function tick() {
  try { const r = await fetch(BASE + 'api/stats', { cache: 'no-store' }); if (!r.ok) throw new Error(r.status); update(await r.json()); }
  catch (e) { $('conn').className = 'pill bad'; $('conn').textContent = 'disconnected'; }
  finally { setTimeout(tick, INTERVAL); }
}
tick();
`;

/** The dashboard page; `base` is the URL path the admin routes are mounted at, ending in `/`. */
export function dashboardHtml(base: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>sidecarless · mesh dashboard</title><style>${CSS}</style></head>
<body><header><h1>side<span>car</span>less</h1><span class="pill" id="conn">connecting…</span><span class="pill" id="ready">…</span>
<span class="pill" id="version">…</span><span class="spacer"></span><span class="pill" id="updated"></span></header>
<main><div class="summary">
<div class="stat"><div class="k">requests / s</div><div class="v" id="sum-rps">–</div></div>
<div class="stat"><div class="k">success rate</div><div class="v" id="sum-sr">–</div></div>
<div class="stat"><div class="k">services</div><div class="v" id="sum-services">–</div></div>
<div class="stat"><div class="k">endpoints</div><div class="v" id="sum-endpoints">–</div></div></div>
<div id="services"></div>
<div class="grid2"><section class="card"><h2>Endpoints</h2><div id="endpoints"></div></section>
<section class="card"><h2>Circuit breakers</h2><div id="breakers"></div><h2 style="margin-top:16px">Config</h2><div id="config"></div></section></div>
</main><script>const BASE = ${JSON.stringify(base).replace(/</g, '\\u003c')};${SCRIPT}</script></body></html>`;
}
