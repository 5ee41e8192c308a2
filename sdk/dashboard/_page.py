"""The dashboard's page: one HTML document with its CSS and JS (plotly.js is served from the plotly package).

``__Q__`` becomes the query string carrying the token (empty without one) and
``__HISTORY_S__`` the seconds of history plotted. The script keeps the
records it got from ``/events`` (a ``snapshot``, then ``records`` batches),
drops what is older than the history, and redraws with ``Plotly.react``.
``window.__records`` / ``window.__points`` count records and plotted points.
"""

PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>affectedge live</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body{font:14px system-ui,sans-serif;margin:0;background:#f6f7f9;color:#222}
 header{display:flex;gap:1.5em;align-items:baseline;padding:.6em 1em;background:#1d2733;color:#eee}
 header h1{font-size:1.1em;margin:0} #conn.ok{color:#7d7} #conn.bad{color:#f77}
 main{padding:.6em 1em;display:grid;gap:.8em;grid-template-columns:repeat(auto-fit,minmax(440px,1fr))}
 section{background:#fff;border:1px solid #dde;border-radius:6px;padding:.5em .8em}
 h2{font-size:1em;margin:.2em 0 .4em} .plot{height:280px} #va{height:400px}
 .cards{display:grid;grid-template-columns:repeat(2,1fr);gap:.5em}
 .card{border-left:5px solid #999;padding:.3em .6em;background:#fafbfc} .card b{font-size:1.2em}
 .muted{color:#888} .stale{color:#c60} table{border-collapse:collapse;width:100%;font-size:.92em}
 td,th{border-bottom:1px solid #eee;padding:.2em .4em;text-align:right} td:first-child,th:first-child{text-align:left}
 #fusedLabel{font-size:2em;font-weight:600} .chip{display:inline-block;margin:.15em;padding:.1em .5em;border-radius:1em;color:#fff}
 #events li{margin:.1em 0}
</style></head><body>
<header><h1>affectedge live</h1><span id="conn" class="bad">connecting</span><span id="session" class="muted"></span>
<span id="clock"></span><span id="summary"></span></header>
<main>
 <section><h2>Valence / arousal (circumplex)</h2><div id="va"></div></section>
 <section><h2>Fused emotion</h2><div id="fusedLabel" class="muted">-</div><div id="fusedInfo" class="muted"></div>
  <div id="contrib"></div><h2 style="margin-top:.8em">Latest per modality</h2><div class="cards" id="cards"></div></section>
 <section><h2>speech: category probabilities</h2><div class="plot" id="p-speech"></div></section>
 <section><h2>face: category probabilities</h2><div class="plot" id="p-face"></div></section>
 <section><h2>eeg: category probabilities</h2><div class="plot" id="p-eeg"></div></section>
 <section><h2>fused: category probabilities</h2><div class="plot" id="p-fused"></div></section>
 <section style="grid-column:1/-1"><h2>Sensor status</h2><table id="status"><thead><tr><th>modality</th><th>source</th>
  <th>rate Hz</th><th>samples</th><th>dropped</th><th>overflows</th><th>reconnects</th><th>gaps (n / ms)</th>
  <th>latency p50 / p95 ms</th><th>results</th><th>calibration</th><th>error</th></tr></thead><tbody></tbody></table></section>
 <section style="grid-column:1/-1"><h2>Emotion events (latest first)</h2><ul id="events"></ul></section>
</main>
<script src="/static/plotly.min.js__Q__"></script>
<script>
"use strict";
const Q = "__Q__", HISTORY_S = __HISTORY_S__, MODS = ["speech", "face", "eeg", "fused"];
const COLOR = {speech: "#1f77b4", face: "#ff7f0e", eeg: "#2ca02c", fused: "#d62728"};
const PAL = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const $ = id => document.getElementById(id);
const esc = s => String(s == null ? "" : s).replace(/[&<>"']/g, c => "&#" + c.charCodeAt(0) + ";");
const fmt = (x, d = 2) => x == null ? "-" : Number(x).toFixed(d);
window.__records = 0; window.__points = 0;
let S;  // everything the page shows, rebuilt from the records
function reset() {
  S = {tmax: 0, prob: {}, va: {}, latest: {}, calib: {}, status: {}, events: [], session: null, summary: null};
  for (const m of MODS) { S.prob[m] = {labels: null, t: [], p: []}; S.va[m] = {t: [], x: [], y: []}; }
}
function handle(r) {
  window.__records++;
  const m = r.modality;
  if (r.type === "session") { reset(); S.session = r; }
  else if (r.type === "status") S.status[m] = r;
  else if (r.type === "event") { S.events.unshift(r); S.events.length = Math.min(S.events.length, 15); }
  else if (r.type === "summary") S.summary = r;
  else if (r.type === "result" && S.prob[m]) {
    const t = r.end_ms / 1000, P = S.prob[m];
    S.tmax = Math.max(S.tmax, t); S.latest[m] = r;
    if (r.status === "ok") S.calib[m] = r.calibrated;
    if (r.status === "ok" && r.labels && r.probs) {
      if (!P.labels || P.labels.join() !== r.labels.join()) { P.labels = r.labels; P.t = []; P.p = []; }
      P.t.push(t); P.p.push(r.probs); window.__points += r.probs.length;
    } else if (P.labels) { P.t.push(t); P.p.push(null); }  // a gap in the lines
    if (r.valence != null && r.arousal != null) {
      const V = S.va[m]; V.t.push(t); V.x.push(r.valence); V.y.push(r.arousal); window.__points++;
    }
  }
}
function prune() {
  const t0 = S.tmax - HISTORY_S;
  for (const m of MODS) {
    const P = S.prob[m], V = S.va[m];
    let i = 0; while (i < P.t.length && P.t[i] < t0) i++;
    if (i) { P.t.splice(0, i); P.p.splice(0, i); }
    i = 0; while (i < V.t.length && V.t[i] < t0) i++;
    if (i) { V.t.splice(0, i); V.x.splice(0, i); V.y.splice(0, i); }
  }
}
const BASE = {margin: {l: 40, r: 10, t: 10, b: 35}, uirevision: "keep", legend: {orientation: "h", y: -0.12, yanchor: "top"}};
function drawVA() {
  const data = [];
  for (const m of MODS) {
    const V = S.va[m], n = V.t.length;
    const op = V.t.map(t => Math.max(0.12, 1 - (S.tmax - t) / 60));  // older points fade out over a minute
    data.push({x: V.x, y: V.y, mode: "lines+markers", name: m, line: {color: COLOR[m], width: m === "fused" ? 2.5 : 1},
               marker: {size: 5, opacity: op, color: COLOR[m]}, opacity: 0.8, hovertemplate: m + " v %{x:.2f} a %{y:.2f}"});
    data.push({x: n ? [V.x[n - 1]] : [], y: n ? [V.y[n - 1]] : [], mode: "markers", showlegend: false, hoverinfo: "skip",
               marker: {size: 14, color: COLOR[m], line: {color: "#000", width: 1}}});
  }
  const ax = {range: [-1.15, 1.15], zeroline: true, zerolinecolor: "#bbb", gridcolor: "#eee"};
  Plotly.react("va", data, {...BASE, margin: {l: 45, r: 10, t: 10, b: 40}, legend: {orientation: "h", y: -0.2, yanchor: "top"},
    xaxis: {...ax, title: {text: "valence"}}, yaxis: {...ax, title: {text: "arousal"}, scaleanchor: "x"},
    shapes: [{type: "circle", x0: -1, y0: -1, x1: 1, y1: 1, line: {color: "#888", width: 1}}],
    annotations: [["excited", .75, .75], ["content", .75, -.75], ["depressed", -.75, -.75], ["distressed", -.75, .75]]
      .map(([text, x, y]) => ({text, x, y, showarrow: false, font: {color: "#aaa"}}))}, {displaylogo: false, responsive: true});
}
function drawProb(m) {
  const P = S.prob[m], labels = P.labels || [];
  const data = labels.map((lab, k) => ({x: P.t, y: P.p.map(p => p ? p[k] : null), name: lab, mode: "lines",
    line: {color: PAL[k % PAL.length], width: 1.5}, connectgaps: false}));
  Plotly.react("p-" + m, data, {...BASE, xaxis: {ticksuffix: " s", range: [Math.max(0, S.tmax - HISTORY_S), Math.max(S.tmax, 10)]},
    yaxis: {range: [0, 1], title: {text: "probability"}},
    annotations: labels.length ? [] : [{text: "no " + m + " results yet", showarrow: false, xref: "paper", yref: "paper", x: .5, y: .5}]},
    {displaylogo: false, responsive: true});
}
function drawCards() {
  $("cards").innerHTML = MODS.map(m => {
    const r = S.latest[m];
    if (!r) return `<div class="card" style="border-color:${COLOR[m]}"><b>${m}</b> <span class="muted">no result yet</span></div>`;
    const stale = S.tmax - r.end_ms / 1000 > 5 ? ' <span class="stale">(stale)</span>' : "";
    const ans = r.status === "ok" ? `${esc(r.label)} ${fmt(Math.max(...r.probs))}` : `<span class="muted">${esc(r.status)}</span>`;
    const va = r.valence != null ? ` v${fmt(r.valence, 1)} a${fmt(r.arousal, 1)}` : "";
    return `<div class="card" style="border-color:${COLOR[m]}"><b>${m}</b>: ${ans}${va}${stale}<br><span class="muted">` +
      `${r.calibrated ? "calibrated" : "uncalibrated"}, conf ${fmt(r.confidence)}, latency ${fmt(r.latency_ms, 0)} ms</span></div>`;
  }).join("");
  const f = S.latest.fused;
  if (!f) return;
  $("fusedLabel").className = f.status === "ok" ? "" : "muted";
  $("fusedLabel").textContent = f.status === "ok" ? f.label : f.status;
  $("fusedInfo").textContent = f.status === "ok" ? `confidence ${fmt(f.confidence)}, valence ${fmt(f.valence)}, arousal ${fmt(f.arousal)} at ${fmt(f.end_ms / 1000, 1)} s` : (f.detail || "");
  const tw = (f.contributors || []).reduce((a, c) => a + c.weight, 0) || 1;
  $("contrib").innerHTML = (f.contributors || []).length ? "from: " + f.contributors.map(c =>
    `<span class="chip" style="background:${COLOR[c.modality] || "#777"}">${esc(c.modality)} ${fmt(c.weight / tw)} (age ${fmt(c.age_ms, 0)} ms)</span>`).join("")
    : '<span class="muted">no modality contributed</span>';
}
function drawStatus() {
  const rows = Object.values(S.status).map(s => {
    const cal = S.calib[s.modality];
    return `<tr><td><b style="color:${COLOR[s.modality] || "#333"}">${esc(s.modality)}</b></td><td>${esc(s.source)}</td><td>${fmt(s.rate_hz, 1)}</td>` +
      `<td>${esc(s.samples)}</td><td>${esc(s.dropped)}</td><td>${esc(s.overflows)}</td><td>${esc(s.reconnects)}</td>` +
      `<td>${(s.gaps || []).length} / ${fmt(s.gap_ms, 0)}</td><td>${fmt(s.latency_ms_p50, 1)} / ${fmt(s.latency_ms_p95, 1)}</td>` +
      `<td>${esc(s.results)}</td><td>${cal == null ? "-" : cal ? "calibrated" : "uncalibrated"}</td><td>${esc(s.error || "")}</td></tr>`;
  });
  $("status").tBodies[0].innerHTML = rows.join("") || '<tr><td colspan="12" class="muted">no status record yet</td></tr>';
  $("events").innerHTML = S.events.map(e => `<li><b style="color:${COLOR[e.modality] || "#333"}">${esc(e.modality)}</b> ` +
    `${esc(e.label)}: ${fmt(e.start_ms / 1000, 1)}-${fmt(e.end_ms / 1000, 1)} s, ${e.n_results} results, conf ${fmt(e.mean_confidence)}</li>`).join("");
  if (S.session) $("session").textContent = "sources: " + Object.entries(S.session.sources || {}).map(([k, v]) => k + "=" + v).join(", ");
  $("clock").textContent = "t = " + fmt(S.tmax, 1) + " s";
  if (S.summary) $("summary").textContent = `run ended (${S.summary.stopped_by}), ${fmt(S.summary.duration_ms / 1000, 1)} s, ${S.summary.events} events`;
}
function draw() { prune(); drawVA(); for (const m of MODS) drawProb(m); drawCards(); drawStatus(); }
reset(); draw();
const es = new EventSource("/events" + Q);
es.addEventListener("snapshot", ev => { reset(); JSON.parse(ev.data).records.forEach(handle); draw(); });
es.addEventListener("records", ev => { JSON.parse(ev.data).records.forEach(handle); draw(); });
es.onopen = () => { $("conn").textContent = "live"; $("conn").className = "ok"; };
es.onerror = () => { $("conn").textContent = "disconnected (retrying)"; $("conn").className = "bad"; };
</script></body></html>
"""
